#!/usr/bin/env bash
# Replication, in one run on one machine, printed side by side: IMAGES
# images (tags of one upstream repository) of five layers each, four of
# them a base every image shares, copied from an upstream Distribution
# (Debian's docker-registry, anonymous, on loopback) by
#   skopeo     `skopeo sync` into a second Distribution;
#   portcullis a pull replication rule (`POST …/replication-rules/ID/run`)
#              into Portcullis with its defaults (scan on push included).
# Each copies the whole repository once (cold), then again with nothing
# changed (warm). Afterwards every copied tag must name the upstream's
# digest on both sides.
#
#   bench/replication.sh                          # 100 images, 4 × 4 MiB base, 256 KiB of their own
#   IMAGES=20 BASE_MIB=1 bench/replication.sh     # a quick look
#   PORTCULLIS_BIN=/tmp/pc bench/replication.sh   # a build kept aside
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}/replication
IMAGES=${IMAGES:-100}
BASE_MIB=${BASE_MIB:-4}
UNIQUE_KIB=${UNIQUE_KIB:-256}
PW=bench-admin-password
rm -rf "$W"; mkdir -p "$W"; W=$(realpath "$W")

for t in skopeo docker-registry curl jq; do
  command -v "$t" >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo docker-registry curl jq >/dev/null
    break
  }
done
PC=${PORTCULLIS_BIN:-target/release/portcullis}
[ -n "${PORTCULLIS_BIN:-}" ] || cargo build --release -j2 -q

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/v2/" && return; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
distribution() {  # NAME PORT: an anonymous Distribution with deletes on
  cat > "$W/$1.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/$1-data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2}
YML
  docker-registry serve "$W/$1.yml" >"$W/$1.log" 2>&1 & pids+=($!)
  wait_up "127.0.0.1:$2"
}

UP=127.0.0.1:5621 DOWN=127.0.0.1:5622 PCA=127.0.0.1:5623
distribution upstream 5621
distribution downstream 5622

# The images, pushed straight to the upstream (monolithic uploads).
python3 - "$W" "$UP" "$IMAGES" "$BASE_MIB" "$UNIQUE_KIB" <<'PY'
import hashlib, io, json, os, sys, tarfile, gzip, urllib.request
w, up, images, base_mib, unique_kib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
repo = "library/app"
def layer(name, size):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        body = os.urandom(size)
        info = tarfile.TarInfo(name); info.size = size; t.addfile(info, io.BytesIO(body))
    tar = raw.getvalue()
    return gzip.compress(tar, compresslevel=1, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()
def put(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    head = urllib.request.Request(f"http://{up}/v2/{repo}/blobs/{digest}", method="HEAD")
    try:
        urllib.request.urlopen(head); return digest, len(data)
    except urllib.error.HTTPError:
        pass
    post = urllib.request.urlopen(urllib.request.Request(f"http://{up}/v2/{repo}/blobs/uploads/", method="POST"))
    loc = post.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{up}{loc}"
    sep = "&" if "?" in loc else "?"
    urllib.request.urlopen(urllib.request.Request(f"{loc}{sep}digest={digest}", data=data, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"}))
    return digest, len(data)
base = [layer(f"base/{i}", base_mib << 20) for i in range(4)]
total = 0
for n in range(images):
    own = layer(f"app/{n}", unique_kib << 10)
    layers = base + [own]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": [f"/app/{n}"]},
                         "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]}}).encode()
    cd, cs = put(config)
    descs = []
    for blob, _ in layers:
        d, s = put(blob)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                           "layers": descs}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://{up}/v2/{repo}/manifests/{n + 1}", data=manifest, method="PUT",
                                                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
    with open(os.path.join(w, "digests"), "a") as f:
        f.write(f"{n + 1} sha256:{hashlib.sha256(manifest).hexdigest()}\n")
PY
blobs=$(du -sb "$W/upstream-data" | cut -f1)

declare -A R
# skopeo sync: the whole repository, into mirror/app.
for pass in cold warm; do
  t0=$(now)
  skopeo sync --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false \
    "$UP/library/app" "$DOWN/mirror" >/dev/null 2>"$W/skopeo-$pass.err"
  R[skopeo,$pass]=$(secs "$t0" "$(now)")
done

# Portcullis: a pull rule for every tag of library/app into mirror/library/app.
PORTCULLIS_ADMIN_PASSWORD=$PW RUST_LOG=warn "$PC" serve --listen "$PCA" --data "$W/pc-data" >"$W/pc.log" 2>&1 & pids+=($!)
wait_up "$PCA"
api() { curl -sS --fail-with-body -u "admin:$PW" "$@"; }
api -d '{"name": "mirror"}' "http://$PCA/api/v1/orgs" >/dev/null
api -d "{\"name\": \"up\", \"url\": \"http://$UP\"}" "http://$PCA/api/v1/registries" >/dev/null
RULE=$(api -d '{"name": "app", "registry": "up", "direction": "pull", "source": "library/app", "tags": ["*"], "target": "mirror", "enabled": true}' \
  "http://$PCA/api/v1/replication-rules" | jq -r .id)
for pass in cold warm; do
  t0=$(now)
  run=$(api -X POST "http://$PCA/api/v1/replication-rules/$RULE/run" | jq -r .run_id)
  for _ in $(seq 6000); do
    status=$(api "http://$PCA/api/v1/replication-rules/$RULE/runs" | jq -r --arg r "$run" '.[] | select(.id == $r) | .status')
    [ "$status" = running ] || break
    sleep 0.1
  done
  R[portcullis,$pass]=$(secs "$t0" "$(now)")
  api "http://$PCA/api/v1/replication-rules/$RULE/runs" | jq --arg r "$run" '.[] | select(.id == $r)' > "$W/run-$pass.json"
  [ "$(jq -r .status "$W/run-$pass.json")" = completed ] || { echo "the $pass run did not complete: $(jq -c '{status, error}' "$W/run-$pass.json")" >&2; exit 1; }
done
R[portcullis,copied]=$(jq '.copied | length' "$W/run-cold.json")
R[portcullis,bytes]=$(jq '.bytes' "$W/run-cold.json")
R[portcullis,warm-skipped]=$(jq '.skipped | length' "$W/run-warm.json")

# Every tag names the upstream's digest, on both sides.
TOKEN=$(curl -sf -u "admin:$PW" "http://$PCA/auth/token?service=portcullis&scope=repository:mirror/library/app:pull" | jq -r .token)
while read -r tag digest; do
  for side in "$DOWN/v2/mirror/app" "$PCA/v2/mirror/library/app"; do
    got=$(curl -sfI -H "Authorization: Bearer $TOKEN" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$side/manifests/$tag" | awk 'tolower($1)=="docker-content-digest:" {print $2}' | tr -d '\r')
    [ "$got" = "$digest" ] || { echo "$side:$tag is $got, upstream $digest" >&2; exit 1; }
  done
done < "$W/digests"

printf '\n%s images of 5 layers (4 shared, %s MiB each; %s KiB of their own), %s MiB of upstream blobs\n' \
  "$IMAGES" "$BASE_MIB" "$UNIQUE_KIB" "$((blobs >> 20))"
printf '%-28s %12s %12s %8s\n' "" "skopeo sync" "portcullis" "ratio"
for pass in cold warm; do
  printf '%-28s %11ss %11ss %7sx\n' "replicate, $pass" "${R[skopeo,$pass]}" "${R[portcullis,$pass]}" \
    "$(python3 -c "print(f'{${R[portcullis,$pass]} / ${R[skopeo,$pass]}:.2f}')")"
done
printf 'portcullis: cold run copied %s tags, %s MiB downloaded; warm run skipped %s\n' \
  "${R[portcullis,copied]}" "$(( ${R[portcullis,bytes]} >> 20 ))" "${R[portcullis,warm-skipped]}"
echo "every tag names the upstream's digest on both sides"
