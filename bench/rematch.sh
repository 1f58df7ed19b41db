#!/usr/bin/env bash
# Re-matching benchmark: 1,000 stored SBOMs (the scan benchmark's image,
# each a little different) in a running `portcullis serve`, then
# `db import` of every file in ../shared/vulndb; the server re-matches them
# all without reading a layer and logs how long that took.
#
#   bench/rematch.sh            # needs bench/scan.sh to have built its image
#   SBOMS=5000 bench/rematch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${BENCH_WORK:-$root/bench/work}
sboms=${SBOMS:-1000}
layout="$work/scan/layout"
[ -f "$layout/index.json" ] || { echo "run bench/scan.sh first (it builds the image)" >&2; exit 1; }
python3 -c 'import zstandard' 2>/dev/null || python3 -m pip install -q zstandard
cargo build --release -j2 -q
bin="$root/target/release/portcullis"
data="$work/rematch"
rm -rf "$data" && mkdir -p "$data"
"$bin" scan --data "$data" "oci:$layout:latest" --format json >"$data/image.json"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
serve() {
  PORTCULLIS_SCAN_DB_POLL_SECS=1 PORTCULLIS_ADMIN_PASSWORD=bench PORTCULLIS_LOG_FORMAT=json \
    "$bin" serve --data "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "serve did not start" >&2; exit 1
}
serve; kill "$pid"; wait "$pid" || true   # creates the schema
python3 - "$data" "$sboms" <<'PY'
import json, sqlite3, sys, hashlib
import zstandard
data, n = sys.argv[1], int(sys.argv[2])
image = json.load(open(f"{data}/image.json"))
facts = {"os": image["os"], "components": image["components"], "warnings": []}
db = sqlite3.connect(f"{data}/portcullis.db")
for i in range(n):
    # Each SBOM differs: one component's version is bumped by i.
    f = json.loads(json.dumps(facts))
    c = f["components"][i % len(f["components"])]["package"]
    c["version"] = c["source_version"] = c["version"] + f"+b{i}"
    digest = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
    db.execute("INSERT INTO scans (digest, status, layers, findings, requested_at, finished_at) VALUES (?, 'done', '[]', '[]', 0, 0)",
               (digest,))
    # Stored as the scanner stores them: zstd-compressed JSON.
    db.execute("INSERT INTO scan_sboms (digest, sbom) VALUES (?, ?)",
               (digest, zstandard.ZstdCompressor(level=3).compress(json.dumps(f).encode())))
db.commit()
print(f"{n} SBOMs of {len(facts['components'])} components stored")
PY
serve
"$bin" db import --data "$data" "$root"/../shared/vulndb/*.osv.jsonl.gz 2>/dev/null | tail -1
for _ in $(seq 600); do
  line=$(grep -m1 'stored SBOMs re-matched' "$data/serve.log" || true)
  [ -n "$line" ] && break
  sleep 0.1
done
kill "$pid"; wait "$pid" 2>/dev/null || true
[ -n "$line" ] || { echo "no re-match within 60 s" >&2; exit 1; }
echo "$line" | python3 -c '
import json, sys
f = json.loads(sys.stdin.read())["fields"]
print("re-matched %s SBOMs against %s advisories in %s ms (goal: 1,000 in 2,000 ms)" % (f["sboms"], f["advisories"], f["ms"]))'
