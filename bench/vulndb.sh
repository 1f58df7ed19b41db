#!/usr/bin/env bash
# The vulnerability database benchmark: a database about 20x the shared
# OSV data (~500k records synthesised from the real ones by
# make_vulndb.py, names varied), on disk, against the in-memory index it
# replaced, in one run:
#   - import time and the importer's peak RSS;
#   - `portcullis scan` peak RSS with no database, the shared data, and
#     the 20x database (goal: 20x <= none + 16 MiB);
#   - opening the index, per-image match time on disk vs in memory, and a
#     re-match of 1,000 stored SBOMs (crates/vulndb/examples/index_bench.rs);
#   - the server's RSS after scanning the image, with and without the 20x
#     database (goal: growth <= 16 MiB).
# The image is bench/scan.sh's (debootstrap bookworm + pip + npm); it is
# built by that script when missing.
#
#   bench/vulndb.sh          # COPIES=18 by default (505,350 records)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
base=${BENCH_WORK:-$root/bench/work}
work=$base/vulndb
copies=${COPIES:-18}
mkdir -p "$work"
layout=$base/scan/layout
[ -f "$layout/index.json" ] || RUNS=1 bench/scan.sh >/dev/null
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
command -v skopeo >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo >/dev/null; }
cargo build --release -j2 -q
cargo build --release -j2 -q -p portcullis-vulndb --example index_bench
PC=$root/target/release/portcullis
BENCH=$root/target/release/examples/index_bench
synth=$work/synth-$copies.jsonl.gz
[ -f "$synth" ] || python3 bench/make_vulndb.py ../shared/vulndb "$synth" "$copies"
shared=(../shared/vulndb/{pypi,crates,go,npm,debian-dsa-dla,alpine,almalinux}.osv.jsonl.gz)

timed() { # NAME CMD...: "wall_s peak_kib" into $work/NAME.time
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
}
wall() { cut -d' ' -f1 "$work/$1.time"; }
peak() { cut -d' ' -f2 "$work/$1.time"; }

rm -rf "$work"/data-*
mkdir -p "$work/data-none"
timed import-shared "$PC" db import --data "$work/data-shared" "${shared[@]}"
timed import-synth "$PC" db import --data "$work/data-synth" "$synth"
records=$("$PC" db status --data "$work/data-synth" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["sources"][0]["records"])')

# Scan peak RSS: the median of three runs each.
scan_rss() { # NAME DATA
  local rs=()
  for _ in 1 2 3; do
    timed "scan-$1" "$PC" scan --data "$2" "oci:$layout:latest" --format json
    rs+=("$(peak "scan-$1")")
  done
  printf '%s\n' "${rs[@]}" | sort -n | sed -n 2p
}
rss_none=$(scan_rss none "$work/data-none")
rss_shared=$(scan_rss shared "$work/data-shared")
rss_synth=$(scan_rss synth "$work/data-synth")
cp "$work/scan-synth.out" "$work/facts.json"

"$BENCH" "$work/data-synth" "$work/facts.json" 1000 >"$work/index.json"

# The server: RSS after pushing and scanning the image, without and with the database.
server_rss() { # DATA PORT -> "rss_kib hwm_kib"
  local data=$1 port=$2 pw=bench-password-1
  PORTCULLIS_ADMIN_PASSWORD=$pw PORTCULLIS_GC_INTERVAL_SECS=0 RUST_LOG=info "$PC" serve \
    --listen "127.0.0.1:$port" --data "$data" >"$work/serve-$port.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
  skopeo copy -q --dest-tls-verify=false --dest-creds "admin:$pw" "oci:$layout:latest" \
    "docker://127.0.0.1:$port/bench/app:1" >/dev/null
  for _ in $(seq 600); do grep -q '"scanned"\|scanned' "$work/serve-$port.log" && break; sleep 0.1; done
  sleep 1
  awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' "/proc/$pid/status"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
read -r srv_none_rss srv_none_hwm < <(server_rss "$work/data-none" 15301)
read -r srv_synth_rss srv_synth_hwm < <(server_rss "$work/data-synth" 15302)

python3 - "$work" "$records" "$rss_none" "$rss_shared" "$rss_synth" \
  "$srv_none_rss" "$srv_none_hwm" "$srv_synth_rss" "$srv_synth_hwm" \
  "$(wall import-shared)" "$(peak import-shared)" "$(wall import-synth)" "$(peak import-synth)" <<'PY'
import json, sys
work, records = sys.argv[1], int(sys.argv[2])
rn, rs, rz, sn, snh, sz, szh = (int(x) / 1024 for x in sys.argv[3:10])
iw_s, ip_s, iw_z, ip_z = float(sys.argv[10]), int(sys.argv[11]) / 1024, float(sys.argv[12]), int(sys.argv[13]) / 1024
ix = json.load(open(f"{work}/index.json"))
def row(name, value, goal="", ok=None):
    mark = "" if ok is None else ("met" if ok else "MISSED")
    print(f"{name:<48} {value:>14} {goal:>18} {mark:>7}")
print(f"\ndatabase: {records:,} records synthesised (20x), {ix['advisories']:,} advisories indexed\n")
row("measure", "value", "goal", "")
row("import, shared data (7 files)", f"{iw_s:.1f} s", "")
row("import, 20x database", f"{iw_z:.1f} s", "<= 60 s", iw_z <= 60)
row("import peak RSS, 20x", f"{ip_z:.0f} MiB", "")
row("scan peak RSS, no database", f"{rn:.1f} MiB", "")
row("scan peak RSS, shared data", f"{rs:.1f} MiB", "")
row("scan peak RSS, 20x database", f"{rz:.1f} MiB", f"<= {rn + 16:.1f} MiB", rz <= rn + 16)
row("server RSS after a scan, no database", f"{sn:.1f} MiB", "")
row("server RSS after a scan, 20x database", f"{sz:.1f} MiB", f"<= {sn + 16:.1f} MiB", sz <= sn + 16)
row("server peak RSS, no database / 20x", f"{snh:.0f} / {szh:.0f} MiB", "")
row("open the index (median of 20)", f"{ix['open_ms_median']:.2f} ms", "<= 50 ms", ix['open_ms_median'] <= 50)
row(f"match one image, on disk, first after open", f"{ix['match_ms_disk_first']:.2f} ms", "")
row(f"  the same, median of 20 fresh opens", f"{ix['match_ms_disk_cold_median']:.2f} ms", "")
row(f"match one image, on disk, again ({ix['components']} components)", f"{ix['match_ms_disk_median']:.2f} ms", "")
row("match one image, in memory (before)", f"{ix['match_ms_memory_median']:.2f} ms", "")
ratio = ix['match_ms_disk_median'] / ix['match_ms_memory_median']
row("  disk again / memory", f"{ratio:.2f}x", "<= 1.10x", ratio <= 1.10)
row("  disk first / memory", f"{ix['match_ms_disk_cold_median'] / ix['match_ms_memory_median']:.2f}x", "")
row("findings, disk / memory", f"{ix['findings_disk']} / {ix['findings_memory']}", "equal", ix['findings_disk'] == ix['findings_memory'])
row(f"re-match {ix['rematch_sboms']} SBOMs, on disk", f"{ix['rematch_ms_disk']:.0f} ms", "<= 1000 ms", ix['rematch_ms_disk'] <= 1000)
row(f"re-match {ix['rematch_sboms']} SBOMs, in memory", f"{ix['rematch_ms_memory']:.0f} ms", "")
row("loading the in-memory index (before)", f"{ix['load_ms_memory']:.0f} ms", "")
row("bench process RSS: on disk / in memory", f"{ix['rss_kib_disk']/1024:.0f} / {ix['rss_kib_memory']/1024:.0f} MiB", "")
PY
