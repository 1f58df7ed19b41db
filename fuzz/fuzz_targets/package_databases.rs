//! Every package-database parser on the same bytes: none may panic, and
//! each returns packages and warnings for whatever it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_scan::{apk, dpkg, npm, os_release, python};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = dpkg::parse_status(&text);
    let _ = apk::parse_installed(&text);
    let _ = python::parse_metadata(&text);
    let _ = npm::parse_package_json(&text);
    let _ = os_release::parse(&text);
});
