#!/usr/bin/env bash
# Portcullis beside CNCF Distribution 2.8.2 on the same disk, same client
# (skopeo), same images; prints one table with both and their ratio.
#   LAYERS=8 LAYER_MIB=128 SMALL=2000 PAR=8 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}
LAYERS=${LAYERS:-8}; LAYER_MIB=${LAYER_MIB:-128}; SMALL=${SMALL:-2000}; PAR=${PAR:-8}; WRK_SECS=${WRK_SECS:-10}
mkdir -p "$W"; W=$(cd "$W" && pwd)

for t in skopeo docker-registry wrk openssl; do
  command -v "$t" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo docker-registry wrk openssl >/dev/null; break; }
done
cargo build --release -j2 -q
echo "== building layouts ($LAYERS x $LAYER_MIB MiB, $SMALL small images)" >&2
python3 bench/make_layouts.py "$W/layouts" "$LAYERS" "$LAYER_MIB" "$SMALL"

mib() { python3 -c "import sys; print(f'{$1/1048576:.1f}')"; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/1048576/($3-$2):.1f}')"; }   # bytes start end -> MiB/s

big_bytes=$(du -sb "$W/layouts/big/blobs" | cut -f1)
# Bytes of the SMALL images actually pushed (the layout may hold more).
small_bytes=$(python3 - "$W/layouts/small" "$SMALL" <<'PY'
import json, os, sys
layout, n = sys.argv[1], int(sys.argv[2])
def size(d): return os.path.getsize(os.path.join(layout, "blobs", *d.split(":")))
total = 0
for m in json.load(open(os.path.join(layout, "index.json")))["manifests"][:n]:
    man = json.load(open(os.path.join(layout, "blobs", *m["digest"].split(":"))))
    total += m["size"] + man["config"]["size"] + sum(l["size"] for l in man["layers"])
print(total)
PY
)

# The machine's limits for the same bytes (sha256 of the layers, from the page cache).
cat "$W"/layouts/big/blobs/sha256/* > /dev/null
t0=$(now); openssl dgst -sha256 "$W"/layouts/big/blobs/sha256/* >/dev/null; t1=$(now)
sha_rate=$(rate "$big_bytes" "$t0" "$t1")
dd_out=$(dd if=/dev/zero of="$W/ddtest" bs=1M count=1024 conv=fsync 2>&1 | tail -1); rm -f "$W/ddtest"
dd_rate=$(echo "$dd_out" | python3 -c "import sys,re; l=sys.stdin.read(); b,s=re.search(r'(\d+) bytes.*copied, ([\d.]+) s',l).groups(); print(f'{int(b)/1048576/float(s):.1f}')")

declare -A R
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
port_dist=5601; port_pc=5602
start() { # name -> pid
  local name=$1 data="$W/data-$1"
  rm -rf "$data" "$W/home-$1" "$W/pull-$1" "$W/spull-$1"; mkdir -p "$data" "$W/home-$1"
  if [ "$name" = dist ]; then
    cat > "$W/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port_dist}
YML
    docker-registry serve "$W/dist.yml" >"$W/dist.log" 2>&1 &
  else
    RUST_LOG=warn PORTCULLIS_GC_INTERVAL_SECS=0 PORTCULLIS_ANONYMOUS=push target/release/portcullis serve --listen 127.0.0.1:$port_pc --data "$data" >"$W/pc.log" 2>&1 &
  fi
  echo $!
}
wait_up() { for _ in $(seq 100); do curl -sf "http://$1/v2/" >/dev/null && return; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }   # server CPU seconds so far

for name in dist pc; do
  port=port_$name; addr=127.0.0.1:${!port}
  pid=$(start "$name"); pids+=("$pid"); wait_up "$addr"
  kill -0 "$pid" || { echo "$name exited at start" >&2; exit 1; }
  export HOME="$W/home-$name"
  echo "== $name: 1 GiB push/pull" >&2
  c0=$(cpu "$pid"); t0=$(now); skopeo copy -q --dest-tls-verify=false "oci:$W/layouts/big:big" "docker://$addr/bench/big:1"; t1=$(now)
  R[$name,push]=$(rate "$big_bytes" "$t0" "$t1"); R[$name,rss]=$(hwm "$pid"); R[$name,push_cpu]=$(python3 -c "print(f'{$(cpu "$pid")-$c0:.2f}')")
  c0=$(cpu "$pid"); t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$addr/bench/big:1" "dir:$W/pull-$name"; t1=$(now)
  R[$name,pull]=$(rate "$big_bytes" "$t0" "$t1"); R[$name,pull_cpu]=$(python3 -c "print(f'{$(cpu "$pid")-$c0:.2f}')")
  # The server alone: the same layers fetched by curl, 8 at a time, to /dev/null.
  layers=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$addr/v2/bench/big/manifests/1" \
    | python3 -c "import json,sys; print(' '.join(l['digest'] for l in json.load(sys.stdin)['layers']))")
  t0=$(now); for l in $layers; do curl -sf -o /dev/null "http://$addr/v2/bench/big/blobs/$l" & done; wait; t1=$(now)
  R[$name,raw]=$(rate "$big_bytes" "$t0" "$t1")
  echo "== $name: $SMALL small images, $PAR at a time" >&2
  t0=$(now)
  seq 0 $((SMALL - 1)) | xargs -P "$PAR" -I{} skopeo copy -q --dest-tls-verify=false "oci:$W/layouts/small:s{}" "docker://$addr/bench/small:s{}"
  t1=$(now); R[$name,spush]=$(rate "$small_bytes" "$t0" "$t1"); R[$name,spush_ips]=$(python3 -c "print(f'{$SMALL/($t1-$t0):.0f}')")
  mkdir -p "$W/spull-$name"; t0=$(now)
  seq 0 $((SMALL - 1)) | xargs -P "$PAR" -I{} skopeo copy -q --src-tls-verify=false "docker://$addr/bench/small:s{}" "dir:$W/spull-$name/s{}"
  t1=$(now); R[$name,spull]=$(rate "$small_bytes" "$t0" "$t1"); R[$name,spull_ips]=$(python3 -c "print(f'{$SMALL/($t1-$t0):.0f}')")
  echo "== $name: manifest GET with wrk, 64 connections" >&2
  # Let the pulls' dirty pages reach the disk first, then warm up.
  sync; sleep 2
  wrk -t2 -c64 -d2s -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$addr/v2/bench/big/manifests/1" >/dev/null
  wrk -t2 -c64 -d"${WRK_SECS}s" --latency -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$addr/v2/bench/big/manifests/1" > "$W/wrk-$name.txt"
  R[$name,rps]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$W/wrk-$name.txt")
  R[$name,p99]=$(awk '$1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v); if (u=="us") v/=1000; else if (u=="s") v*=1000; printf "%.2f", v}' "$W/wrk-$name.txt")
  R[$name,errors]=$(awk '/Non-2xx/ {print $NF} END {}' "$W/wrk-$name.txt"); R[$name,errors]=${R[$name,errors]:-0}
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

ratio() { python3 -c "a,b=float('$1'),float('$2'); print(f'{a/b:.2f}x' if b else '-')"; }
limit=$(python3 -c "print(min($sha_rate,$dd_rate))")
printf '\n%-38s %14s %14s %10s\n' "measure" "distribution" "portcullis" "ratio"
row() { printf '%-38s %14s %14s %10s\n' "$1" "$2" "$3" "$4"; }
row "push $(mib $big_bytes) MiB ($LAYERS layers), MiB/s" "${R[dist,push]}" "${R[pc,push]}" "$(ratio ${R[pc,push]} ${R[dist,push]})"
row "pull $(mib $big_bytes) MiB, MiB/s" "${R[dist,pull]}" "${R[pc,pull]}" "$(ratio ${R[pc,pull]} ${R[dist,pull]})"
row "  server CPU s during the push" "${R[dist,push_cpu]}" "${R[pc,push_cpu]}" ""
row "  server CPU s during the pull" "${R[dist,pull_cpu]}" "${R[pc,pull_cpu]}" ""
row "pull same layers with curl x8, MiB/s" "${R[dist,raw]}" "${R[pc,raw]}" "$(ratio ${R[pc,raw]} ${R[dist,raw]})"
row "push $SMALL small images, MiB/s" "${R[dist,spush]}" "${R[pc,spush]}" "$(ratio ${R[pc,spush]} ${R[dist,spush]})"
row "  (images/s)" "${R[dist,spush_ips]}" "${R[pc,spush_ips]}" ""
row "pull $SMALL small images, MiB/s" "${R[dist,spull]}" "${R[pc,spull]}" "$(ratio ${R[pc,spull]} ${R[dist,spull]})"
row "  (images/s)" "${R[dist,spull_ips]}" "${R[pc,spull_ips]}" ""
row "manifest GET req/s (wrk -c64)" "${R[dist,rps]}" "${R[pc,rps]}" "$(ratio ${R[pc,rps]} ${R[dist,rps]})"
row "manifest GET p99, ms" "${R[dist,p99]}" "${R[pc,p99]}" "$(ratio ${R[dist,p99]} ${R[pc,p99]})"
row "manifest GET non-2xx" "${R[dist,errors]}" "${R[pc,errors]}" ""
row "server peak RSS after 1 GiB push, MiB" "${R[dist,rss]}" "${R[pc,rss]}" ""
printf '\nmachine: sha256 (openssl) %s MiB/s, fsynced dd write %s MiB/s; 60%% of the lower = %s MiB/s\n' \
  "$sha_rate" "$dd_rate" "$(python3 -c "print(f'{0.6*$limit:.1f}')")"
