//! An OSV record from an untrusted import: parse it, rate it, and evaluate
//! its ranges under every version order. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_scan::osv::Advisory;
use portcullis_scan::severity::rate;
use portcullis_scan::version::{apk_cmp, dpkg_cmp, pep440_cmp, semver_cmp};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(advisory) = Advisory::parse(text) else { return };
    let _ = rate(&advisory);
    let _ = advisory.ids();
    for affected in &advisory.affected {
        for order in [dpkg_cmp, apk_cmp, pep440_cmp, semver_cmp] {
            for v in ["0", "1.0", "2:1.0-1", "1.0.0-rc.1", "1.0a1", "v1.2.3", "1.2.3-r4"] {
                let _ = affected.includes(v, order);
                let _ = affected.fixed_after(v, order);
            }
        }
    }
});
