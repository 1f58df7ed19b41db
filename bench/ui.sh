#!/usr/bin/env bash
# The web UI on a big repository: TAGS (10,000) images in one repository,
# each scanned; a signed-in browser's request for a page of 100 tags (the
# repository page: digest, size, pusher, scan shield, badges) at offsets
# all over the repository, REQUESTS (200) times, timed by curl on loopback.
# Prints p50, p90, p99 and max beside the same page of the JSON API it is
# built from. The goal (issue 13): a page of 100 tags in at most 50 ms.
#
#   bench/ui.sh                      # 10,000 tags
#   TAGS=1000 REQUESTS=50 bench/ui.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W=${BENCH_WORK:-bench/work}/ui
TAGS=${TAGS:-10000}
REQUESTS=${REQUESTS:-200}
PW=bench-admin-password
A=127.0.0.1:5623
. bench/serve.sh

echo "== pushing $TAGS images to bench/app" >&2
t0=$(date +%s.%N)
(cd bench && python3 ui_fill.py "http://$A" "$TOKEN" bench/app "$TAGS")
t1=$(date +%s.%N)
echo "== waiting for the scans" >&2
for _ in $(seq 600); do
  done_=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1], timeout=30).execute(\"SELECT count(*) FROM scans WHERE status IN ('done','failed')\").fetchone()[0])" "$D/portcullis.db")
  [ "$done_" -ge "$TAGS" ] && break
  sleep 1
done
echo "   $done_ of $TAGS scanned" >&2

# Sign in as a browser does: the form's token, then the session cookie.
J="$W/cookies"
page=$(curl -s -c "$J" "http://$A/ui/login")
tok=$(printf '%s' "$page" | sed -n 's/.*name="token" value="\([^"]*\)".*/\1/p')
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$J" -c "$J" --data-urlencode username=admin --data-urlencode "password=$PW" --data-urlencode "token=$tok" "http://$A/ui/login")
[ "$code" = 303 ] || { echo "sign-in failed: $code" >&2; exit 1; }
first=$(curl -s -b "$J" "http://$A/ui/repository?name=bench%2Fapp")
rows=$(printf '%s' "$first" | grep -c 'data-tag=' || true)
[ "$rows" = 100 ] || { echo "expected 100 rows, got $rows" >&2; exit 1; }

measure() { # URL-PREFIX AUTH-ARGS… : prints sorted milliseconds
  local prefix=$1; shift
  for i in $(seq "$REQUESTS"); do
    after=$(printf 'build-%05d' $(( (i * 7919) % TAGS )))
    curl -s -o /dev/null -w '%{time_total}\n' "$@" "${prefix}${after}"
  done | awk '{printf "%.2f\n", $1 * 1000}' | sort -n
}
pct() { awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.5); if (i<1) i=1; if (i>NR) i=NR; print a[i]}' "$2"; }

measure "http://$A/ui/repository?name=bench%2Fapp&after=" -b "$J" > "$W/ui.ms"
measure "http://$A/api/v1/repositories/bench/app/tags?limit=100&after=" -H "Authorization: Bearer $TOKEN" > "$W/api.ms"

printf '\nPortcullis web UI, %s tags in one repository, %s requests of a 100-tag page (loopback, curl)\n' "$TAGS" "$REQUESTS"
printf '%-34s %8s %8s %8s %8s\n' "request" "p50 ms" "p90 ms" "p99 ms" "max ms"
for f in ui api; do
  name=$([ $f = ui ] && echo "UI page /ui/repository (HTML)" || echo "API …/tags?limit=100 (JSON)")
  printf '%-34s %8s %8s %8s %8s\n' "$name" "$(pct 50 "$W/$f.ms")" "$(pct 90 "$W/$f.ms")" "$(pct 99 "$W/$f.ms")" "$(pct 100 "$W/$f.ms")"
done
printf 'goal: a page of 100 tags in at most 50 ms; fill took %.0f s\n' "$(echo "$t1 - $t0" | bc)"
