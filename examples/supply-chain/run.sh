#!/usr/bin/env bash
# The seed's supply chain, end to end, with no person in it (README:
# "The whole chain with no person in it"). It starts its own registry on a
# free loopback port and, after a one-time set-up by the platform team:
#   1. a developer commits to a git repository and pushes the commit;
#   2. the git server's hook calls the CI trigger (a webhook receiver);
#   3. CI (ci.sh) builds the Containerfile with buildah, pushes it to
#      acme/app-build under the build number (an immutable tag) and attests
#      SLSA v1 provenance as acme+ci;
#   4. the registry scans it and promotes it to acme/app only if it has no
#      high or critical findings and carries acme+ci's provenance for this
#      git repository; 5. signs it there as acme+release;
#   6. the deployer hears of the signature (a registry webhook) and the
#      admission webhook allows a Deployment of acme/app:<build>;
#   7. the same commit built and pushed by a person (no provenance) is not
#      promoted, and its admission is denied;
#   8. `portcullis audit verify` passes, and the trail's actors for steps
#      2-6 are machines (service accounts and the registry), no person.
# Every step is checked; the script exits non-zero at the first that fails.
#
# Needs portcullis on PATH (cargo build --release; PATH=$PWD/target/release:$PATH),
# buildah, git, curl, jq, python3, openssl. PORTCULLIS_DATABASE (a
# postgres:// URL) puts the registry's metadata in PostgreSQL; VULNDB the
# OSV files (default ../../../shared/vulndb); KEEP=1 keeps the work directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# Everything here talks to 127.0.0.1 only: no proxy may see its credentials,
# and no setting from the caller's environment may send the server elsewhere.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
for v in $(compgen -e | grep '^PORTCULLIS_' || true); do
  [ "$v" = PORTCULLIS_DATABASE ] || unset "$v"
done
VULNDB=${VULNDB:-$here/../../../shared/vulndb}
for tool in portcullis buildah git curl jq python3 openssl timeout; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool" >&2; exit 2; }
done
WORK=$(mktemp -d)
pids=()
finish() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap finish EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; for log in "$WORK"/*.log; do echo "--- $log" >&2; tail -n 30 "$log" >&2; done; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Credentials stay off command lines (other users see those in ps): in files
# of this directory, mode 0600.
umask 077
# Waits up to $1 seconds for the command after it to succeed.
until_ok() { local deadline=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 1; done; }

REGISTRY=127.0.0.1:$(free_port)
ADMIN_PW=$(openssl rand -hex 16)
step "a registry at $REGISTRY (${PORTCULLIS_DATABASE:+PostgreSQL, }data in $WORK/data)"
PORTCULLIS_ADMIN_PASSWORD=$ADMIN_PW PORTCULLIS_WEBHOOK_ALLOW=127.0.0.1 \
  PORTCULLIS_LISTEN=$REGISTRY PORTCULLIS_DATA=$WORK/data PORTCULLIS_PUBLIC_URL=http://$REGISTRY \
  portcullis serve > "$WORK/server.log" 2>&1 &
pids+=($!)
until_ok 60 curl -so /dev/null "http://$REGISTRY/v2/" || fail "the registry did not start"
# curl that prints the server's answer to stderr when it refuses.
call() { local out; if out=$(curl -sS --fail-with-body "$@"); then printf '%s' "$out"; else echo "$out" >&2; return 1; fi; }
printf 'user = "admin:%s"\n' "$ADMIN_PW" > "$WORK/admin.curlrc"
api() { call -K "$WORK/admin.curlrc" "$@"; }
# NAME TOKEN: a header file for an account's API token.
bearer() { printf 'Authorization: Bearer %s\n' "$2" > "$WORK/$1.header"; }

step "set-up, once, by the platform team (a person: before any code is built)"
export REGISTRY_AUTH_FILE=$WORK/admin-auth.json
printf '%s' "$ADMIN_PW" | portcullis login "$REGISTRY" --tls-verify=false -u admin --password-stdin >/dev/null
portcullis org create acme >/dev/null
# CI may push builds and nothing else; only promotion writes acme/app.
portcullis team create acme ci >/dev/null
portcullis robot create acme ci >/dev/null
portcullis team add acme ci acme+ci >/dev/null
portcullis grant acme/app-build write --team ci >/dev/null
api -X PUT -d '{"promotion_only": ["app"]}' "http://$REGISTRY/api/v1/namespaces/acme/settings" >/dev/null
portcullis repo settings acme/app-build --immutable-tags true >/dev/null
# CI signs its provenance with a key of its own; its public half is acme+ci's.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ci.key" 2>/dev/null
openssl pkey -in "$WORK/ci.key" -pubout -out "$WORK/ci.pub"
api -d "$(jq -n --arg pem "$(cat "$WORK/ci.pub")" '{name: "ci", pem: $pem}')" \
  "http://$REGISTRY/api/v1/accounts/acme+ci/keys" >/dev/null
CI_TOKEN=$(portcullis token create acme+ci --name ci --scope 'acme/app-build:pull,push' --days 1)
# The release robot owns the promotion policy and signs with a key the server
# keeps; policies act with their owner's rights, which its grants bound (its
# token may manage, so it is not scoped to repositories).
portcullis robot create acme release >/dev/null
portcullis grant acme admin --account acme+release >/dev/null
portcullis robot signing-key acme release > "$WORK/release.pub"
bearer release "$(portcullis token create acme+release --name release --scope '*:*' --days 1)"
# The cluster's admission webhook reads as acme+deploy.
portcullis robot create acme deploy >/dev/null
portcullis grant acme read --account acme+deploy >/dev/null
DEPLOY_TOKEN=$(portcullis token create acme+deploy --name cluster --scope 'acme/*:pull' --days 1)
# A developer, a person, who may push builds too.
ALICE_PW=$(openssl rand -hex 12)
ALICE_PW=$ALICE_PW jq -n '{name: "alice", password: env.ALICE_PW}' | api -d @- "http://$REGISTRY/api/v1/users" >/dev/null
portcullis grant acme/app-build write --account alice >/dev/null
# The vulnerability database (npm advisories), loaded before the first push.
api --data-binary @"$VULNDB/npm.osv.jsonl.gz" "http://$REGISTRY/api/v1/vulndb?name=npm.osv.jsonl.gz" >/dev/null
db_loaded() { api "http://$REGISTRY/api/v1/vulndb" | jq -e '.status.loaded_generation == .status.generation' >/dev/null; }
until_ok 60 db_loaded || fail "the vulnerability database was not loaded"

# The git server and the CI trigger.
GIT_URL=git+file://$WORK/origin.git
git init -q --bare --initial-branch=main "$WORK/origin.git"
CI_PORT=$(free_port)
cat > "$WORK/origin.git/hooks/post-receive" <<HOOK
#!/bin/sh
# Tells CI of every pushed commit.
while read -r old new ref; do
  curl -sS --fail-with-body -d "{\"ref\": \"\$ref\", \"commit\": \"\$new\"}" http://127.0.0.1:$CI_PORT/git
done
HOOK
chmod +x "$WORK/origin.git/hooks/post-receive"
touch "$WORK/ci.log" "$WORK/deploy.log"
BUILDER_ID=https://ci.acme.example/builders/buildah@v1
# CI's own credentials store: it logs in with nothing but its token.
echo '{"auths": {}}' > "$WORK/ci-auth.json"
REGISTRY=$REGISTRY GIT_URL=$GIT_URL CI_TOKEN=$CI_TOKEN CI_KEY=$WORK/ci.key BUILDER_ID=$BUILDER_ID \
  CI_WORK=$WORK/ci REGISTRY_AUTH_FILE=$WORK/ci-auth.json \
  python3 "$here/ci-trigger.py" "127.0.0.1:$CI_PORT" "$here/ci.sh" "$WORK/ci.log" &
pids+=($!)

# The policy, owned by the release robot: no critical or high finding, and
# provenance from acme+ci's builder for this git repository. Pulls from
# acme/app need acme+release's signature and that provenance; pulls from
# anywhere in acme need the provenance.
provenance=$(jq -cn --arg b "$BUILDER_ID" --arg s "$GIT_URL" \
  '{signed_by: {accounts: ["acme+ci"]}, builder_ids: [$b], source_uris: [$s]}')
POLICY=$(call -H @"$WORK/release.header" -d "$(jq -n --argjson p "$provenance" \
  '{target: "acme/app", tag_template: "%n", sign_as: "acme+release", require_provenance: $p,
    rules: [{field: "vulnerability_critical", operator: "lte", values: ["0"]},
            {field: "vulnerability_high", operator: "lte", values: ["0"]}]}')" \
  "http://$REGISTRY/api/v1/repositories/acme/app-build/policies" | jq -r .id)
api -X PUT -d "$(jq -n --argjson p "$provenance" '{pull_rule: {require_provenance: $p}}')" \
  "http://$REGISTRY/api/v1/namespaces/acme/settings" >/dev/null
portcullis repo settings acme/app --pull-rule "$(jq -cn --argjson p "$provenance" \
  '{require_signed_by: {accounts: ["acme+release"]}, require_provenance: $p}')" >/dev/null
# The deployer hears of promotions and signatures, signed with the hook's
# secret, and reads through the admission webhook as acme+deploy.
DEPLOY_PORT=$(free_port)
WEBHOOK_SECRET=$(openssl rand -hex 32)
DEPLOY_TOKEN=$DEPLOY_TOKEN WEBHOOK_SECRET=$WEBHOOK_SECRET \
  python3 "$here/deployer.py" "127.0.0.1:$DEPLOY_PORT" "$REGISTRY" acme/app "$WORK/deploy.log" &
pids+=($!)
printf '%s' "$WEBHOOK_SECRET" | portcullis webhook create --namespace acme --url "http://127.0.0.1:$DEPLOY_PORT/events" \
  --event PROMOTION,IMAGE_SIGNED --secret-stdin >/dev/null
# Where the trail stands before the chain runs.
last_seq() { api "http://$REGISTRY/api/v1/audit?before=9223372036854775807&limit=1" | jq '.records[0].seq'; }
SET_UP=$(last_seq)


step "1-3: a developer commits; the git hook triggers CI, which builds, pushes and attests"
git clone -q "$WORK/origin.git" "$WORK/checkout" 2>/dev/null
cp -r "$here/app/." "$WORK/checkout/"
git -C "$WORK/checkout" add -A
git -C "$WORK/checkout" -c user.name=dev -c user.email=dev@acme.example commit -qm "app with mqtt-packet 6.1.1"
git -C "$WORK/checkout" push -q origin HEAD:main
until_ok 180 grep -q "^build 1" "$WORK/ci.log" || fail "CI did not report build 1"
grep "^build 1" "$WORK/ci.log"
grep -q "^build 1: FAILED" "$WORK/ci.log" && fail "build 1 failed"

step "4: build 1 has a high finding (mqtt-packet 6.1.1): scanned, not promoted"
# The policy's evaluations of a build tag, newest last: outcome and why.
evaluations_of() {
  api "http://$REGISTRY/api/v1/repositories/acme/app-build/policies/$POLICY/evaluations" \
    | jq -c --arg t "$1" '[(.evaluations? // .)[] | select(.tag == $t)] | sort_by(.at) | map({outcome, detail})'
}
evaluation() { evaluations_of "$1" | jq -c 'last'; }
# Whether tag $1's newest evaluation is `failed`, its provenance passed
# and $2 (a rule's field) failed.
refused_for() {
  evaluation "$1" | jq -e --arg f "$2" '.outcome == "failed" and .detail.images[0].provenance.passed == true
    and ([.detail.images[0].rules[] | select(.rule.field == $f) | .passed] == [false])' >/dev/null
}
until_ok 120 refused_for 1 vulnerability_high || fail "build 1 was not refused for its high finding alone: $(evaluation 1)"
echo "build 1: $(evaluation 1)"

step "a developer fixes the dependency; CI builds 2; promoted, signed, deployed"
echo '{"name": "mqtt-packet", "version": "6.1.2"}' > "$WORK/checkout/node_modules/mqtt-packet/package.json"
git -C "$WORK/checkout" -c user.name=dev -c user.email=dev@acme.example commit -qam "mqtt-packet 6.1.2"
git -C "$WORK/checkout" push -q origin HEAD:main
COMMIT=$(git -C "$WORK/checkout" rev-parse HEAD)
until_ok 180 grep -q "^build 2" "$WORK/ci.log" || fail "CI did not report build 2"
grep "^build 2" "$WORK/ci.log"
BUILD2=$(sed -n 's/^build 2: .* \(sha256:[0-9a-f]*\) .*/\1/p' "$WORK/ci.log")
[ -n "$BUILD2" ] || fail "build 2 failed"
until_ok 120 grep -q "acme/app:2" "$WORK/deploy.log" || fail "the deployer heard of no signed release of build 2"
echo "build 2: $(evaluation 2)"
cat "$WORK/deploy.log"
grep -q "^ALLOWED $REGISTRY/acme/app:2 $BUILD2 " "$WORK/deploy.log" || fail "the Deployment of acme/app:2 was not allowed"
[ "$(api "http://$REGISTRY/api/v1/repositories/acme/app/tags/2" | jq -r .digest)" = "$BUILD2" ] \
  || fail "acme/app:2 is not build 2"
# Build 1 never reached the release repository or the cluster.
if api "http://$REGISTRY/api/v1/repositories/acme/app/tags/1" >/dev/null 2>&1; then fail "build 1 reached acme/app"; fi
if grep -q "acme/app:1 " "$WORK/deploy.log"; then fail "build 1 was deployed"; fi
CHAIN_END=$(last_seq)

step "the release verifies offline: acme+release's signature, acme+ci's provenance, the registry's promotion record"
# Each identity keeps its own credentials (none here: each passes its token).
export REGISTRY_AUTH_FILE=$WORK/deployer-auth.json
echo '{"auths": {}}' > "$REGISTRY_AUTH_FILE"
printf '%s' "$DEPLOY_TOKEN" | buildah login -u acme+deploy --password-stdin --tls-verify=false "$REGISTRY" >/dev/null
creds=(--tls-verify=false)
portcullis verify "$REGISTRY/acme/app:2" --key "$WORK/release.pub" "${creds[@]}"
portcullis verify-attestation "$REGISTRY/acme/app@$BUILD2" --type slsaprovenance1 --key "$WORK/ci.pub" \
  --builder-id "$BUILDER_ID" --source-uri "$GIT_URL" "${creds[@]}" --format json \
  | jq -e --arg c "$COMMIT" '.attestations[0].statement.predicate.buildDefinition.resolvedDependencies[0].digest.gitCommit == $c' >/dev/null \
  || fail "the provenance does not name commit $COMMIT"
portcullis verify-attestation "$REGISTRY/acme/app@$BUILD2" --type https://portcullis.dev/attestation/promotion/v1 \
  --key "$WORK/release.pub" "${creds[@]}"

step "7: the same commit built and pushed by a person: no provenance, not promoted, not admitted"
storage=(--storage-driver vfs --root "$WORK/alice/storage" --runroot "$WORK/alice/runroot")
export REGISTRY_AUTH_FILE=$WORK/alice-auth.json
echo '{"auths": {}}' > "$REGISTRY_AUTH_FILE"
printf '%s' "$ALICE_PW" | buildah login -u alice --password-stdin --tls-verify=false "$REGISTRY" >/dev/null
buildah "${storage[@]}" bud -q --isolation chroot --layers=false -f "$WORK/checkout/Containerfile" \
  -t app:mine "$WORK/checkout" >/dev/null
buildah "${storage[@]}" push -q --tls-verify=false --digestfile "$WORK/alice/digest" \
  app:mine "docker://$REGISTRY/acme/app-build:alice-1"
[ "$(cat "$WORK/alice/digest")" != "$BUILD2" ] || fail "alice's build has CI's digest: the check below would prove nothing"
refused_unattested() {
  evaluation "$1" | jq -e '.outcome == "failed" and .detail.images[0].provenance.passed == false
    and all(.detail.images[0].rules[]; .passed)' >/dev/null
}
until_ok 120 refused_unattested alice-1 || fail "alice-1 was not refused for its provenance alone: $(evaluation alice-1)"
echo "alice-1: $(evaluation alice-1)"
if api "http://$REGISTRY/api/v1/repositories/acme/app/tags/alice-1" >/dev/null 2>&1; then fail "alice-1 reached acme/app"; fi
review=$(jq -n --arg image "$REGISTRY/acme/app-build:alice-1" '{apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
  request: {uid: "alice-1", kind: {group: "apps", version: "v1", kind: "Deployment"},
            resource: {group: "apps", version: "v1", resource: "deployments"}, namespace: "prod", operation: "CREATE",
            object: {apiVersion: "apps/v1", kind: "Deployment", metadata: {name: "app", namespace: "prod"},
                     spec: {selector: {matchLabels: {app: "app"}}, template: {metadata: {labels: {app: "app"}},
                            spec: {containers: [{name: "app", image: $image}]}}}}}}')
bearer deploy "$DEPLOY_TOKEN"
verdict=$(call -H @"$WORK/deploy.header" -d "$review" "http://$REGISTRY/api/v1/admission" | jq -c .response)
echo "admission of acme/app-build:alice-1: $verdict"
echo "$verdict" | jq -e '.allowed == false and (.status.message | test("provenance"))' >/dev/null \
  || fail "alice's image was admitted"

step "8: the audit trail is intact, and no person acted in the chain"
audit_state=(--data "$WORK/data")
[ -n "${PORTCULLIS_DATABASE:-}" ] && audit_state+=(--database "$PORTCULLIS_DATABASE")
portcullis audit verify "${audit_state[@]}"
api "http://$REGISTRY/api/v1/audit?after=$SET_UP&limit=1000" \
  | jq --argjson last "$CHAIN_END" '[.records[] | select(.seq <= $last)]' > "$WORK/chain.json"
jq -r '.[] | [.seq, .actor, .action, .repository // "-", .result] | @tsv' "$WORK/chain.json"
jq -e 'length > 0' "$WORK/chain.json" >/dev/null || fail "no audit records for the chain"
# Who acted (records that succeeded): machines only, service accounts
# (NS+NAME) and the registry itself, whose records name it as system or
# portcullis (names no account may take).
people=$(jq -r '[.[] | select(.result == "ok") | .actor
  | select(contains("+") or . == "system" or . == "portcullis" | not)] | unique | join(", ")' "$WORK/chain.json")
[ -z "$people" ] || fail "people acted in the chain: $people"
# Each machine's step is on the trail: CI's pushes, the promotion and the
# signature, and the admission review the deployer asked for.
for step in "acme+ci push" "acme+release promotion" "acme+release signature" "acme+deploy admission"; do
  jq -e --arg w "${step% *}" --arg a "${step#* }" 'any(.[]; .actor == $w and .action == $a and .result == "ok")' \
    "$WORK/chain.json" >/dev/null || fail "no $step record in the chain"
done
echo
echo "the chain ran with no person in it: commit $COMMIT -> acme/app:2 ($BUILD2), signed, admitted"
