# Sourced by the single-server benchmarks: builds the release binary and
# starts `portcullis serve` on $A with its data in $W/data, an
# administrator whose password is $PW, no background garbage collection,
# and an admin API token in $TOKEN. Stopped when the benchmark exits.
# Sets PC (the binary), D (the data directory) and pc (its pid).
rm -rf "$W"; mkdir -p "$W"
cargo build --release -j2 -q
PC=target/release/portcullis
D="$W/data"
PORTCULLIS_ADMIN_PASSWORD=$PW PORTCULLIS_GC_INTERVAL_SECS=0 RUST_LOG=warn $PC serve --listen "$A" --data "$D" >"$W/pc.log" 2>&1 &
pc=$!
trap 'kill $pc 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://$A/v2/" && break; sleep 0.1; done
TOKEN=$($PC token create admin --name bench --scope '*:pull,push' --data "$D")
