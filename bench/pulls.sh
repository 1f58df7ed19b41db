#!/usr/bin/env bash
# Pulls the way users run them, in one run on one machine, printed side by
# side with ratios:
#   nginx      the same manifest bytes as a static file (the machine's limit
#              for this request shape);
#   dist       CNCF Distribution (Debian's docker-registry), anonymous;
#   pc-token   Portcullis with its defaults: bearer token, pull audit on;
#   pc-public  Portcullis, anonymous pulls of a public repository, audit on.
# Manifest GET by digest with wrk -t2 -c64; blob GET server CPU seconds per
# GiB (from the server process's own /proc counters), beside a minimal
# server's sendfile and read+write of the same bytes; and afterwards
# Portcullis's audit chain must verify and hold one pull record per
# manifest GET it answered 200.
#
#   bench/pulls.sh                     # 10 s per wrk run, a 256 MiB blob fetched 4 times
#   WRK_SECS=3 BLOB_MIB=64 bench/pulls.sh
#   PORTCULLIS_BIN=/tmp/pc-a bench/pulls.sh   # a build kept aside, to compare two in one session
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}/pulls
SECS=${WRK_SECS:-10}
BLOB_MIB=${BLOB_MIB:-256}
BLOB_TIMES=${BLOB_TIMES:-4}
PW=bench-admin-password
rm -rf "$W"; mkdir -p "$W"; W=$(realpath "$W")

for t in wrk docker-registry nginx curl; do
  command -v "$t" >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk docker-registry nginx-light curl >/dev/null
    break
  }
done
PC=${PORTCULLIS_BIN:-target/release/portcullis}
[ -n "${PORTCULLIS_BIN:-}" ] || cargo build --release -j2 -q

# One small image (config, one small layer) and one big blob.
python3 - "$W" "$BLOB_MIB" <<'PY'
import hashlib, io, json, os, sys, tarfile, gzip
w, mib = sys.argv[1], int(sys.argv[2])
def blob(name, data):
    open(os.path.join(w, name), "wb").write(data)
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    body = b"hello from the benchmark\n"
    info = tarfile.TarInfo("etc/motd"); info.size = len(body); t.addfile(info, io.BytesIO(body))
layer = blob("layer", gzip.compress(buf.getvalue(), mtime=0))
config = blob("config", json.dumps({"architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()]}}).encode())
big = blob("big", os.urandom(mib << 20))
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer},
               {"mediaType": "application/vnd.oci.image.layer.v1.tar", **big}]}).encode()
open(os.path.join(w, "manifest"), "wb").write(manifest)
open(os.path.join(w, "digests"), "w").write(" ".join([config["digest"], layer["digest"], big["digest"],
    "sha256:" + hashlib.sha256(manifest).hexdigest()]))
PY
read -r D_CONFIG D_LAYER D_BIG D_MANIFEST < "$W/digests" || true
MT=application/vnd.oci.image.manifest.v1+json

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://$1/v2/" && return; sleep 0.1; done; echo "server $1 did not start" >&2; exit 1; }
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
declare -A R

# push ADDR [AUTH-HEADER...]: the image under bench/small:1.
push() {
  local addr=$1; shift
  local loc sep
  for f in config:$D_CONFIG layer:$D_LAYER big:$D_BIG; do
    # POST, then PUT the bytes: Distribution 2.8 has no single-POST upload.
    loc=$(curl -sf "$@" -X POST -D - -o /dev/null "http://$addr/v2/bench/small/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
    case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -sf "$@" -X PUT --data-binary "@$W/${f%%:*}" -H 'Content-Type: application/octet-stream' "$loc${sep}digest=${f#*:}" -o /dev/null
  done
  curl -sf "$@" -X PUT --data-binary "@$W/manifest" -H "Content-Type: $MT" "http://$addr/v2/bench/small/manifests/1" -o /dev/null
}

# manifest NAME ADDR PATH [wrk -H ...]: wrk at 64 connections.
manifest() {
  local name=$1 addr=$2 path=$3; shift 3
  echo "== $name: manifest GET" >&2
  wrk -t2 -c64 -d2s -H "Accept: $MT" "$@" "http://$addr$path" >/dev/null
  wrk -t2 -c64 -d"${SECS}s" --latency -H "Accept: $MT" "$@" "http://$addr$path" > "$W/wrk-$name.txt"
  R[$name,rps]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$W/wrk-$name.txt")
  R[$name,p99]=$(awk '$1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); sub(/[a-z]+$/,"",v); if (u=="us") v/=1000; else if (u=="s") v*=1000; printf "%.2f", v}' "$W/wrk-$name.txt")
  R[$name,non2xx]=$(awk '/Non-2xx/ {print $NF}' "$W/wrk-$name.txt"); R[$name,non2xx]=${R[$name,non2xx]:-0}
}

# settle PID: waits (at most 2 min) until the server is idle, so work it
# started after the push (Portcullis scans the pushed image) is not counted.
settle() {
  local a b
  for _ in $(seq 240); do
    a=$(cpu "$1"); sleep 0.5; b=$(cpu "$1")
    python3 -c "import sys; sys.exit(0 if $b - $a <= 0.01 else 1)" && return
  done
}

# blobcpu NAME ADDR PID [curl args]: server CPU seconds per GiB of blob GETs.
blobcpu() {
  local name=$1 addr=$2 pid=$3; shift 3
  local before after
  settle "$pid"
  before=$(cpu "$pid")
  for _ in $(seq "$BLOB_TIMES"); do
    curl -sf "$@" "http://$addr/v2/bench/small/blobs/$D_BIG" -o /dev/null
  done
  after=$(cpu "$pid")
  R[$name,blobcpu]=$(python3 -c "print(f'{($after-$before)/($BLOB_TIMES*$BLOB_MIB/1024):.3f}')")
}

# nginx: the manifest as a static file at the same path.
mkdir -p "$W/nginx/root/v2/bench/small/manifests" "$W/nginx/tmp"
cp "$W/manifest" "$W/nginx/root/v2/bench/small/manifests/$D_MANIFEST"
cat > "$W/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $W/nginx/tmp; proxy_temp_path $W/nginx/tmp; fastcgi_temp_path $W/nginx/tmp;
  uwsgi_temp_path $W/nginx/tmp; scgi_temp_path $W/nginx/tmp;
  server { listen 127.0.0.1:5611; root $W/nginx/root; default_type $MT; }
}
CONF
nginx -c "$(realpath "$W/nginx/nginx.conf")" -g 'daemon off;' & pids+=($!)
sleep 0.5
manifest nginx 127.0.0.1:5611 "/v2/bench/small/manifests/$D_MANIFEST"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true

# The kernel's own cost for the same blob bytes: a minimal server sending
# them by sendfile, and by read+write (whether zero-copy wins is the
# kernel's and the machine's answer, not the registry's).
port=5616
for mode in sendfile copy; do
  python3 bench/blob_control.py "$mode" "$W/big" "$port" "$BLOB_TIMES" > "$W/control-$mode.txt" & ctl=$!
  for _ in $(seq 100); do grep -q ready "$W/control-$mode.txt" && break; sleep 0.1; done
  for _ in $(seq "$BLOB_TIMES"); do curl -sf "http://127.0.0.1:$port/" -o /dev/null; done
  wait "$ctl"
  R[ctl-$mode,blobcpu]=$(python3 -c "print(f'{$(tail -1 "$W/control-$mode.txt")/($BLOB_TIMES*$BLOB_MIB/1024):.3f}')")
  port=$((port + 1))
done

# Distribution, anonymous.
cat > "$W/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dist-data}}
http: {addr: 127.0.0.1:5612}
YML
docker-registry serve "$W/dist.yml" >"$W/dist.log" 2>&1 & pids+=($!); dist=$!
wait_up 127.0.0.1:5612
push 127.0.0.1:5612
# Blobs first: afterwards Portcullis's audit writer is still busy with the
# manifest run's records, which would be counted as blob CPU.
blobcpu dist 127.0.0.1:5612 "$dist"
manifest dist 127.0.0.1:5612 "/v2/bench/small/manifests/$D_MANIFEST"
kill "$dist"; wait "$dist" 2>/dev/null || true

# Portcullis with its defaults: nothing anonymous, tokens, pull audit on.
PORTCULLIS_ADMIN_PASSWORD=$PW RUST_LOG=warn "$PC" serve --listen 127.0.0.1:5613 --data "$W/pc-data" >"$W/pc.log" 2>&1 & pids+=($!); pc=$!
wait_up 127.0.0.1:5613
A=127.0.0.1:5613
token() { curl -sf -u "admin:$PW" "http://$A/auth/token?service=portcullis&scope=$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
push $A -H "Authorization: Bearer $(token repository:bench/small:pull,push)"
PULL=$(token repository:bench/small:pull)
blobcpu pc-token $A "$pc" -H "Authorization: Bearer $PULL"
manifest pc-token $A "/v2/bench/small/manifests/$D_MANIFEST" -H "Authorization: Bearer $PULL"
curl -sf -u "admin:$PW" -X PUT -d '{"visibility": "public"}' "http://$A/api/v1/repositories/bench/small" -o /dev/null
manifest pc-public $A "/v2/bench/small/manifests/$D_MANIFEST"
metrics=$(curl -sf "http://$A/metrics")
served=$(echo "$metrics" | awk '/^portcullis_http_requests_total\{/ && /route="manifest_get"/ && /status="200"/ {s+=$2} END {print s+0}')
zero_copy=$(echo "$metrics" | awk '/^portcullis_blob_bytes_sent_zero_copy_total / {print $2}')
kill -TERM "$pc"; wait "$pc" 2>/dev/null || true
verify=$("$PC" audit verify --data "$W/pc-data" || true)
recorded=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM audit_log WHERE action = ?", ("pull",)).fetchone()[0])' "$W/pc-data/portcullis.db")

ratio() { python3 -c "a,b=float('${1:-0}'),float('${2:-0}'); print(f'{a/b:.2f}' if b else '-')"; }
printf '\n%-34s %10s %10s %10s %10s\n' "manifest GET by digest, wrk -c64" "nginx" "dist" "pc-token" "pc-public"
printf '%-34s %10s %10s %10s %10s\n' "requests/s" "${R[nginx,rps]}" "${R[dist,rps]}" "${R[pc-token,rps]}" "${R[pc-public,rps]}"
printf '%-34s %10s %10s %10s %10s\n' "p99, ms" "${R[nginx,p99]}" "${R[dist,p99]}" "${R[pc-token,p99]}" "${R[pc-public,p99]}"
printf '%-34s %10s %10s %10s %10s\n' "non-2xx" "${R[nginx,non2xx]}" "${R[dist,non2xx]}" "${R[pc-token,non2xx]}" "${R[pc-public,non2xx]}"
printf '%-34s %10s %10s %10s %10s\n' "rate / nginx" "1.00" "$(ratio "${R[dist,rps]}" "${R[nginx,rps]}")" "$(ratio "${R[pc-token,rps]}" "${R[nginx,rps]}")" "$(ratio "${R[pc-public,rps]}" "${R[nginx,rps]}")"
printf '%-34s %10s %10s %10s %10s\n' "rate / dist" "" "1.00" "$(ratio "${R[pc-token,rps]}" "${R[dist,rps]}")" "$(ratio "${R[pc-public,rps]}" "${R[dist,rps]}")"
printf '\n%-34s %10s %10s %10s\n' "blob GET (${BLOB_TIMES} x ${BLOB_MIB} MiB, plain HTTP)" "dist" "pc-token" "pc/dist"
printf '%-34s %10s %10s %10s\n' "server CPU s per GiB" "${R[dist,blobcpu]}" "${R[pc-token,blobcpu]}" "$(ratio "${R[pc-token,blobcpu]}" "${R[dist,blobcpu]}")"
printf '%-34s %10s %10s\n' "bytes sent by sendfile" "" "$zero_copy"
printf '%-34s %10s %10s %10s\n' "minimal server: sendfile, copy" "${R[ctl-sendfile,blobcpu]}" "${R[ctl-copy,blobcpu]}" "$(ratio "${R[ctl-sendfile,blobcpu]}" "${R[ctl-copy,blobcpu]}")"
printf '\n%-34s %s\n' "manifest GETs answered 200" "$served"
printf '%-34s %s\n' "pull records in the audit trail" "$recorded"
printf '%-34s %s\n' "audit verify" "$verify"
