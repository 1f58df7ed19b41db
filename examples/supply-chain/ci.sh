#!/usr/bin/env bash
# The CI job: what runs for each commit, with no person in it. It builds
# the commit's Containerfile with buildah, pushes the image to the build
# repository under the build number (an immutable tag), and attests SLSA v1
# provenance (builder, git URL, commit) signed with the CI's own key.
#
# Given by the CI trigger: COMMIT, BUILD; by the CI's configuration:
# REGISTRY, GIT_URL, CI_TOKEN (acme+ci's token, scoped to acme/app-build),
# CI_KEY (the CI's private key, PKCS#8 PEM), BUILDER_ID, CI_WORK, and
# REGISTRY_AUTH_FILE (CI's own credentials store).
set -euo pipefail
: "${COMMIT:?}" "${BUILD:?}" "${REGISTRY:?}" "${GIT_URL:?}" "${CI_TOKEN:?}" "${CI_KEY:?}" "${BUILDER_ID:?}" "${CI_WORK:?}" "${REGISTRY_AUTH_FILE:?}"

job=$CI_WORK/build-$BUILD
mkdir -p "$job"
cd "$job"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# SLSA names a git source git+<url>; git itself takes the <url>.
git clone -q "${GIT_URL#git+}" src
git -C src -c advice.detachedHead=false checkout -q "$COMMIT"

# vfs storage and chroot isolation: no daemon, no privileges beyond root.
storage=(--storage-driver vfs --root "$CI_WORK/storage" --runroot "$CI_WORK/runroot")
buildah "${storage[@]}" bud -q --isolation chroot --layers=false \
  -f src/Containerfile -t "app-build:$BUILD" src >/dev/null
# CI's credential is its token, kept in its own auth file (REGISTRY_AUTH_FILE),
# never on a command line; buildah and portcullis both read it there.
printf '%s' "$CI_TOKEN" | buildah login -u acme+ci --password-stdin --tls-verify=false "$REGISTRY" >/dev/null
image="$REGISTRY/acme/app-build"
buildah "${storage[@]}" push -q --tls-verify=false --digestfile digest \
  "app-build:$BUILD" "docker://$image:$BUILD"
digest=$(cat digest)

# SLSA v1 provenance: who built it (the builder), from what (the commit of
# the repository), how (the Containerfile), and when.
jq -n --arg uri "$GIT_URL" --arg commit "$COMMIT" --arg builder "$BUILDER_ID" --arg build "build-$BUILD" \
  --arg started "$started" --arg finished "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{
  buildDefinition: {
    buildType: "https://portcullis.dev/examples/supply-chain/buildah@v1",
    externalParameters: {source: {uri: $uri, digest: {gitCommit: $commit}}, containerfile: "Containerfile"},
    resolvedDependencies: [{uri: $uri, digest: {gitCommit: $commit}}]
  },
  runDetails: {
    builder: {id: $builder},
    metadata: {invocationId: $build, startedOn: $started, finishedOn: $finished}
  }
}' > provenance.json
# By digest: a tag can move between the push and the attestation.
portcullis attest "$image@$digest" --type slsaprovenance1 --predicate provenance.json \
  --key "$CI_KEY" --tls-verify=false >/dev/null
echo "build $BUILD: $image:$BUILD $digest (commit $COMMIT)"
