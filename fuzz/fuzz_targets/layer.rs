//! A layer blob from a stranger (gzip, zstd or tar, sniffed), read under
//! small limits: an error or facts, never a panic or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_scan::layer::{merge, read_layer, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_layer_bytes: 1 << 20,
        max_file_bytes: 64 << 10,
        max_entries: 1000,
    };
    if let Ok(facts) = read_layer(data, &limits) {
        let _ = merge([("sha256:fuzz", &facts)]);
    }
});
