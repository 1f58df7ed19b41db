#!/usr/bin/env bash
# Garbage collection at scale: a registry holding UNREF (100,000) blobs no
# manifest references and REF (10,000) that tagged images use; while a
# client keeps pushing whole images, `portcullis gc` runs with the default
# grace periods (every pre-filled blob is aged past them first). Prints the
# time and rate, and checks afterwards that every referenced blob and every
# image pushed during the collection is intact and that no unreferenced
# blob is left.
#
#   bench/gc.sh                       # 100,000 + 10,000
#   UNREF=10000 REF=1000 bench/gc.sh  # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}/gc
UNREF=${UNREF:-100000}
REF=${REF:-10000}
PW=bench-admin-password
A=127.0.0.1:5621
. bench/serve.sh

echo "== filling: $UNREF unreferenced blobs, $REF referenced" >&2
t0=$(date +%s.%N)
python3 bench/gc_fill.py fill "http://$A" "$TOKEN" "$UNREF" "$REF" > "$W/referenced"
t1=$(date +%s.%N)
# Everything so far is two hours old: past the default grace periods.
python3 - "$D/portcullis.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=60)
c.execute("UPDATE blobs SET written_at = written_at - 7200000")
c.execute("UPDATE repo_blobs SET linked_at = linked_at - 7200000")
c.commit()
PY
before=$(find "$D/blobs" -type f | wc -l)

echo "== collecting while pushes run" >&2
python3 bench/gc_fill.py push "http://$A" "$TOKEN" 600 "$W/live" &
pusher=$!
sleep 1
g0=$(date +%s.%N)
$PC gc --data "$D" --format json > "$W/gc.json"
g1=$(date +%s.%N)
kill $pusher 2>/dev/null || true; wait $pusher 2>/dev/null || true

echo "== checking" >&2
check=$(python3 - "http://$A" "$TOKEN" "$W/referenced" "$W/live" <<'PY'
import http.client, sys
base, token, ref, live = sys.argv[1:5]
c = http.client.HTTPConnection(base.split("//")[1])
def head(repo, d):
    c.request("HEAD", f"/v2/{repo}/blobs/{d}", headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse(); r.read(); return r.status == 200
refs = [l.strip() for l in open(ref) if l.strip()]
kept = 0
repos = [f"keep/r{i}" for i in range(100)]
for i, d in enumerate(refs):
    # fill pushed image i into keep/r{i % 100} with 10 layers: layer k of image i is line 10*i+k.
    if head(repos[(i // 10) % 100], d):
        kept += 1
images = [l.split() for l in open(live) if l.strip()]
intact = sum(1 for ds in images if all(head("live/app", d) for d in ds))
print(f"{kept} {len(refs)} {intact} {len(images)}")
PY
)
read -r kept refs intact images <<< "$check"
after=$(find "$D/blobs" -type f | wc -l)
python3 - "$W/gc.json" "$g0" "$g1" "$t0" "$t1" "$before" "$after" "$kept" "$refs" "$intact" "$images" "$UNREF" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
g0, g1, t0, t1 = map(float, sys.argv[2:6])
before, after, kept, refs, intact, images, unref = map(int, sys.argv[6:13])
secs = g1 - g0
rows = [
    ("fill (HTTP pushes)", f"{t1 - t0:.1f} s"),
    ("blob files before", before),
    ("gc time", f"{secs:.1f} s"),
    ("blobs removed", r["blobs"]),
    ("rate", f"{r['blobs'] / secs:.0f} blobs/s"),
    ("unreferenced left", max(0, unref - r["blobs"])),
    ("referenced blobs intact", f"{kept}/{refs}"),
    ("images pushed during gc, intact", f"{intact}/{images}"),
    ("blob files after", after),
]
for k, v in rows:
    print(f"{k:<34} {v}")
PY
