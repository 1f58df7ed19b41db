//! Each publication, from real records cut down (see tests/data/PROVENANCE.md),
//! through recognition, conversion and `VulnDb::import`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{recognise, Shape, Unrecognised};
use crate::tests::{gzip, shared};
use crate::{input, ImportReport, Limits, NoProgress, VulnDb, VulnDbError};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// `(source name, format, records, rejected)` per source.
fn summary(report: &ImportReport) -> Vec<(&str, &str, u64, u64)> {
    report
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.format.as_str(), s.records, s.rejected_count))
        .collect()
}

struct Converted {
    format: String,
    records: BTreeMap<String, Value>,
    rejected: Vec<(String, String)>,
}

/// What an input turns into before the database stores it.
fn convert(path: &Path, limits: &Limits) -> Result<Converted, VulnDbError> {
    let mut records = BTreeMap::new();
    let mut rejected = Vec::new();
    let format = input::read_source(path, limits, &NoProgress, &mut |location, raw| match raw {
        Ok(text) => {
            let record: Value = serde_json::from_str(text).expect("converted records are JSON");
            records.insert(record["id"].as_str().expect("an id").to_string(), record);
        }
        Err(why) => rejected.push((location, why)),
    })?;
    Ok(Converted {
        format,
        records,
        rejected,
    })
}

/// `(type, vector, origin)` per severity; origins must match severities one to one.
fn severities(record: &Value) -> Vec<(String, String, String)> {
    let severity = record["severity"].as_array().cloned().unwrap_or_default();
    let origins = record["database_specific"]["severity_origins"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(severity.len(), origins.len(), "{record}");
    severity
        .iter()
        .zip(&origins)
        .map(|(s, o)| {
            (
                s["type"].as_str().unwrap().to_string(),
                s["score"].as_str().unwrap().to_string(),
                o.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn cve5_and_nvd_records_keep_every_vector_and_where_it_came_from() {
    struct Case {
        input: &'static str,
        id: &'static str,
        severity: &'static [(&'static str, &'static str, &'static str)],
        modified: &'static str,
        withdrawn: Option<&'static str>,
    }
    let cases = [
        Case {
            input: "cve5/CVE-2023-44487.json",
            id: "CVE-2023-44487",
            severity: &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "cve:adp")],
            modified: "2024-08-19T07:48:04.546Z",
            withdrawn: None,
        },
        Case {
            input: "cve5/CVE-2024-41110.json",
            id: "CVE-2024-41110",
            severity: &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", "cve:cna")],
            modified: "2024-10-13T21:03:34.392Z",
            withdrawn: None,
        },
        Case {
            input: "cve5/CVE-2024-9287.json",
            id: "CVE-2024-9287",
            severity: &[(
                "CVSS_V4",
                "CVSS:4.0/AV:L/AC:L/AT:P/PR:H/UI:A/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/U:Green",
                "cve:cna",
            )],
            modified: "2024-10-22T17:13:32.968Z",
            withdrawn: None,
        },
        Case {
            input: "cve5/CVE-2024-47534.json",
            id: "CVE-2024-47534",
            severity: &[
                (
                    "CVSS_V4",
                    "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:N/VI:H/VA:N/SC:N/SI:N/SA:N",
                    "cve:cna",
                ),
                ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "cve:adp"),
            ],
            modified: "2024-10-11T14:19:00.950Z",
            withdrawn: None,
        },
        Case {
            input: "cve5/CVE-2019-14861.json",
            id: "CVE-2019-14861",
            severity: &[("CVSS_V3", "CVSS:3.0/AV:N/AC:H/PR:L/UI:N/S:U/C:N/I:N/A:H", "cve:cna")],
            modified: "2024-08-05T00:26:39.136Z",
            withdrawn: None,
        },
        Case {
            input: "cve5/CVE-2019-25161.json",
            id: "CVE-2019-25161",
            severity: &[],
            modified: "2024-02-27T09:57:13.593Z",
            withdrawn: Some("2024-02-27T09:57:13.593Z"),
        },
        Case {
            input: "nvd/nvd-api-page.json",
            id: "CVE-2023-27314",
            severity: &[
                ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "nvd"),
                ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "nvd:cna"),
            ],
            modified: "2023-10-18T18:00:24.900Z",
            withdrawn: None,
        },
        // A "Primary" metric from a CNA is still the CNA's.
        Case {
            input: "nvd/nvd-api-page.json",
            id: "CVE-2023-22068",
            severity: &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:N/I:N/A:H", "nvd:cna")],
            modified: "2023-10-18T17:56:38.083Z",
            withdrawn: None,
        },
        Case {
            input: "nvd/nvd-api-page.json",
            id: "CVE-2023-5631",
            severity: &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "nvd:cna")],
            modified: "2023-10-18T17:41:28.250Z",
            withdrawn: None,
        },
        Case {
            input: "nvd/nvd-api-page.json",
            id: "CVE-2023-43250",
            severity: &[],
            modified: "2023-10-18T17:41:28.250Z",
            withdrawn: None,
        },
        // v2 is left out beside v3.
        Case {
            input: "nvd/nvd-api-single-entry.json",
            id: "CVE-2022-1576",
            severity: &[("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N", "nvd")],
            modified: "2024-11-21T06:41:00.133Z",
            withdrawn: None,
        },
        // NVD's own vector first, though the CNA's v4.0 is listed first.
        Case {
            input: "nvd/nvd-records-in-constructed-page.json",
            id: "CVE-2024-0012",
            severity: &[
                ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "nvd"),
                (
                    "CVSS_V4",
                    "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:L/SI:N/SA:N/E:X/CR:X/IR:X/AR:X/MAV:X/MAC:X/MAT:X/MPR:X/MUI:X/MVC:X/MVI:X/MVA:X/MSC:X/MSI:X/MSA:X/S:X/AU:N/R:U/V:C/RE:H/U:Red",
                    "nvd:cna",
                ),
            ],
            modified: "2025-10-21T20:19:49.640Z",
            withdrawn: None,
        },
        // v2 where it is all there is.
        Case {
            input: "nvd/nvd-records-in-constructed-page.json",
            id: "CVE-1999-0001",
            severity: &[("CVSS_V2", "AV:N/AC:L/Au:N/C:N/I:N/A:P", "nvd")],
            modified: "2024-11-20T23:27:31.207Z",
            withdrawn: None,
        },
        Case {
            input: "nvd/nvd-records-in-constructed-page.json",
            id: "CVE-2024-0069",
            severity: &[],
            modified: "2023-11-28T00:15:07.140Z",
            withdrawn: Some("2023-11-28T00:15:07.140Z"),
        },
    ];
    for case in cases {
        let converted = convert(&data(case.input), &Limits::default()).unwrap();
        assert!(
            converted.rejected.is_empty(),
            "{}: {:?}",
            case.input,
            converted.rejected
        );
        let record = &converted.records[case.id];
        let want: Vec<(String, String, String)> = case
            .severity
            .iter()
            .map(|(k, v, o)| (k.to_string(), v.to_string(), o.to_string()))
            .collect();
        assert_eq!(severities(record), want, "{}", case.id);
        assert_eq!(record["modified"], case.modified, "{}", case.id);
        assert_eq!(record["withdrawn"].as_str(), case.withdrawn, "{}", case.id);
        assert!(record.get("affected").is_none(), "{}", case.id);
    }
}

#[test]
fn the_debian_tracker_becomes_debian_cve_records_per_release() {
    // (ecosystem, package, fixed, status, urgency, nodsa, nodsa_reason)
    type Entry = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: [(&str, &str, &[Entry]); 6] = [
        (
            "debian-tracker/vunnel-debian.json",
            "DEBIAN-CVE-2008-7220",
            &[
                (
                    "Debian:8",
                    "prototypejs",
                    Some("1.6.0.2-1"),
                    "resolved",
                    "high**",
                    None,
                    None,
                ),
                (
                    "Debian:9",
                    "prototypejs",
                    Some("1.6.0.2-1"),
                    "resolved",
                    "high**",
                    None,
                    None,
                ),
                (
                    "Debian:10",
                    "prototypejs",
                    Some("1.6.0.2-1"),
                    "resolved",
                    "high**",
                    None,
                    None,
                ),
            ],
        ),
        // Open in the end-of-life releases: affected, with no fix.
        (
            "debian-tracker/vunnel-debian.json",
            "DEBIAN-CVE-2022-0456",
            &[
                ("Debian:9", "chromium", None, "open", "end-of-life", None, None),
                ("Debian:10", "chromium", None, "open", "end-of-life", None, None),
                (
                    "Debian:11",
                    "chromium",
                    Some("98.0.4758.80-1~deb11u1"),
                    "resolved",
                    "not yet assigned",
                    None,
                    None,
                ),
                (
                    "Debian:12",
                    "chromium",
                    Some("98.0.4758.80-1"),
                    "resolved",
                    "not yet assigned",
                    None,
                    None,
                ),
            ],
        ),
        (
            "debian-tracker/vunnel-debian.json",
            "DEBIAN-CVE-2025-53603",
            &[
                (
                    "Debian:11",
                    "sope",
                    Some("5.0.1-2+deb11u1"),
                    "resolved",
                    "not yet assigned",
                    None,
                    None,
                ),
                (
                    "Debian:12",
                    "sope",
                    Some("5.8.0-1+deb12u1"),
                    "resolved",
                    "not yet assigned",
                    None,
                    None,
                ),
                (
                    "Debian:13",
                    "sope",
                    Some("5.12.1-2"),
                    "resolved",
                    "not yet assigned",
                    None,
                    None,
                ),
            ],
        ),
        (
            "debian-tracker/vunnel-debian.json",
            "DEBIAN-CVE-2013-1444",
            &[
                (
                    "Debian:8",
                    "txt2man",
                    Some("1.5.5-4.1"),
                    "resolved",
                    "low**",
                    None,
                    None,
                ),
                (
                    "Debian:9",
                    "txt2man",
                    Some("1.5.5-4.1"),
                    "resolved",
                    "low**",
                    None,
                    None,
                ),
                (
                    "Debian:10",
                    "txt2man",
                    Some("1.5.5-4.1"),
                    "resolved",
                    "low**",
                    None,
                    None,
                ),
            ],
        ),
        // <no-dsa>: kept verbatim, with its (empty) reason.
        (
            "debian-tracker/vulnerablecode-debian.json",
            "DEBIAN-CVE-2014-8242",
            &[
                (
                    "Debian:8",
                    "librsync",
                    None,
                    "open",
                    "low",
                    Some("Minor issue, too instrusive to backport"),
                    Some(""),
                ),
                (
                    "Debian:10",
                    "librsync",
                    None,
                    "open",
                    "low",
                    Some("Minor issue, too instrusive to backport"),
                    Some(""),
                ),
            ],
        ),
        (
            "debian-tracker/vulnerablecode-debian.json",
            "DEBIAN-CVE-2009-1382",
            &[
                (
                    "Debian:9",
                    "mimetex",
                    Some("1.50-1.1"),
                    "resolved",
                    "medium",
                    None,
                    None,
                ),
                (
                    "Debian:10",
                    "mimetex",
                    Some("1.50-1.1"),
                    "resolved",
                    "medium",
                    None,
                    None,
                ),
            ],
        ),
    ];
    for (input, id, want) in cases {
        let converted = convert(&data(input), &Limits::default()).unwrap();
        assert_eq!(converted.format, "debian-tracker");
        assert!(converted.rejected.is_empty(), "{:?}", converted.rejected);
        let record = &converted.records[id];
        let cve = id.strip_prefix("DEBIAN-").unwrap();
        assert_eq!(record["upstream"], json!([cve]));
        // The tracker's description, where it has one (not for every issue).
        let source: Value = serde_json::from_slice(&fs::read(data(input)).unwrap()).unwrap();
        let description = source
            .as_object()
            .unwrap()
            .values()
            .find_map(|issues| issues[cve]["description"].as_str());
        assert_eq!(record["summary"].as_str(), description, "{id}");
        assert_eq!(record["details"].as_str(), description, "{id}");
        let got: Vec<Value> = record["affected"].as_array().unwrap().clone();
        let want: Vec<Value> = want
            .iter()
            .map(|(eco, package, fixed, status, urgency, nodsa, reason)| {
                let mut events = vec![json!({"introduced": "0"})];
                events.extend(fixed.map(|f| json!({"fixed": f})));
                let mut specific = json!({"urgency": urgency, "status": status});
                if let Some(n) = nodsa {
                    specific["nodsa"] = json!(n);
                }
                if let Some(r) = reason {
                    specific["nodsa_reason"] = json!(r);
                }
                json!({
                    "package": {"ecosystem": eco, "name": package},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "ecosystem_specific": specific,
                })
            })
            .collect();
        assert_eq!(got, want, "{id}");
    }
    // Fixed at version 0 everywhere (not affected), no releases at all
    // (`"releases": []`), and TEMP- ids give no record.
    let vunnel = convert(&data("debian-tracker/vunnel-debian.json"), &Limits::default()).unwrap();
    let ids: Vec<&str> = vunnel.records.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        [
            "DEBIAN-CVE-2005-3111",
            "DEBIAN-CVE-2008-7220",
            "DEBIAN-CVE-2013-1444",
            "DEBIAN-CVE-2022-0456",
            "DEBIAN-CVE-2025-53603"
        ]
    );
    let vulnerablecode = convert(&data("debian-tracker/vulnerablecode-debian.json"), &Limits::default()).unwrap();
    assert_eq!(vulnerablecode.records.len(), 3, "{:?}", vulnerablecode.records.keys());
    assert!(!vulnerablecode.records.keys().any(|id| id.contains("TEMP")));
}

/// Not real data: vunnel's excerpt with bookworm's status changed to
/// `undetermined`, as no real excerpt with that status was found.
#[test]
fn an_undetermined_release_is_not_claimed_affected() {
    let mut tracker: Value =
        serde_json::from_slice(&fs::read(data("debian-tracker/vunnel-debian.json")).unwrap()).unwrap();
    tracker["chromium"]["CVE-2022-0456"]["releases"]["bookworm"]["status"] = json!("undetermined");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tracker.json");
    fs::write(&path, tracker.to_string()).unwrap();
    let converted = convert(&path, &Limits::default()).unwrap();
    let ecosystems: Vec<&str> = converted.records["DEBIAN-CVE-2022-0456"]["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["package"]["ecosystem"].as_str().unwrap())
        .collect();
    assert_eq!(ecosystems, ["Debian:9", "Debian:10", "Debian:11"]);
}

/// Every format through `VulnDb::import`, each a source of its own, as the
/// scanner will load it.
#[test]
fn each_format_imports_into_the_database() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data_dir.path());
    let inputs = ["ghsa", "cve5", "nvd", "debian-tracker"].map(data);
    let report = db.import(&inputs, false, &Limits::default(), &NoProgress).unwrap();
    assert_eq!(
        summary(&report),
        [
            ("ghsa", "osv", 2, 0),
            ("cve5", "cve5", 6, 0),
            ("nvd", "nvd", 8, 0),
            ("debian-tracker", "debian-tracker", 8, 0)
        ]
    );
    let status = db.status().unwrap().unwrap();
    let formats: Vec<&str> = status.sources.iter().map(|s| s.format.as_str()).collect();
    assert_eq!(formats, ["osv", "cve5", "nvd", "debian-tracker"]);

    let loaded = db.load().unwrap().unwrap();
    let by_id = |id: &str| {
        loaded
            .advisories
            .iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("{id} not loaded"))
    };
    let kinds = |id: &str| by_id(id).severity.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>();
    assert_eq!(kinds("GHSA-4f8r-qqr9-fq8j"), ["CVSS_V3", "CVSS_V4"]);
    assert_eq!(by_id("GHSA-4f8r-qqr9-fq8j").specific.rating.as_deref(), Some("HIGH"));
    assert_eq!(
        by_id("GHSA-j8r2-6x86-q33q").specific.rating.as_deref(),
        Some("MODERATE")
    );
    assert_eq!(by_id("GHSA-j8r2-6x86-q33q").aliases, ["CVE-2023-32681"]);
    assert_eq!(kinds("CVE-2024-47534"), ["CVSS_V4", "CVSS_V3"]);
    assert_eq!(kinds("CVE-1999-0001"), ["CVSS_V2"]);
    assert!(by_id("CVE-2019-25161").withdrawn.is_some());
    assert!(by_id("CVE-2024-0069").withdrawn.is_some());
    let librsync = by_id("DEBIAN-CVE-2014-8242");
    assert_eq!(librsync.upstream, ["CVE-2014-8242"]);
    let package = librsync.affected[0].package.as_ref().unwrap();
    assert_eq!(
        (package.ecosystem.as_str(), package.name.as_str()),
        ("Debian:8", "librsync")
    );
    // The CVEs these sources rate are ones the shared OSV data names.
    let dsa_dla = fs::read(shared("debian-dsa-dla.osv.jsonl.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&dsa_dla[..]), &mut text).unwrap();
    for cve in [
        "CVE-2023-44487",
        "CVE-2024-41110",
        "CVE-2024-9287",
        "CVE-2023-5631",
        "CVE-2022-0456",
    ] {
        assert!(text.contains(&format!("\"{cve}\"")), "{cve} is not in debian-dsa-dla");
    }
}

fn zip_of(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
    for (name, bytes) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The name says nothing: gzip and zstd, zip members, no or wrong
/// extensions, and a directory mixing every format with files that hold
/// no records.
#[test]
fn formats_are_told_by_content_wherever_they_are() {
    let data_dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let read = |rel: &str| fs::read(data(rel)).unwrap();

    let tracker = input.path().join("tracker");
    fs::write(&tracker, gzip(&read("debian-tracker/vunnel-debian.json"))).unwrap();
    let feed = input.path().join("nvd-feed.txt");
    fs::write(&feed, zstd::encode_all(&read("nvd/nvd-api-page.json")[..], 3).unwrap()).unwrap();
    let cves_zip = input.path().join("cves.zip");
    zip_of(
        &cves_zip,
        &[
            ("cves/2024/41xxx/CVE-2024-41110.json", read("cve5/CVE-2024-41110.json")),
            (
                "cves/2024/9xxx/CVE-2024-9287.json.gz",
                gzip(&read("cve5/CVE-2024-9287.json")),
            ),
            ("cves/README.md", b"# CVE records\n".to_vec()),
            // Shaped like cvelistV5's delta.json (made up): JSON, but no records.
            (
                "cves/delta.json",
                br#"{"fetchTime": "2024-10-24T22:00:00Z", "numberOfChanges": 0, "new": [], "updated": []}"#.to_vec(),
            ),
        ],
    );
    let mixed = input.path().join("mixed");
    fs::create_dir_all(mixed.join("nested/deeper")).unwrap();
    fs::create_dir_all(mixed.join(".git")).unwrap();
    fs::copy(
        data("ghsa/GHSA-j8r2-6x86-q33q.json"),
        mixed.join("GHSA-j8r2-6x86-q33q.json"),
    )
    .unwrap();
    fs::copy(data("cve5/CVE-2023-44487.json"), mixed.join("nested/CVE-2023-44487")).unwrap();
    fs::write(
        mixed.join("nested/deeper/page.dat"),
        gzip(&read("nvd/nvd-api-single-entry.json")),
    )
    .unwrap();
    fs::copy(data("debian-tracker/vulnerablecode-debian.json"), mixed.join("data")).unwrap();
    fs::write(mixed.join("README.md"), "These are advisories.\n").unwrap();
    fs::write(mixed.join("LICENSE"), "CC-BY-4.0\n").unwrap();
    fs::write(mixed.join(".git/config"), "[core]\n").unwrap();
    fs::write(mixed.join("broken.json"), "this is not JSON").unwrap();

    let db = VulnDb::in_data_dir(data_dir.path());
    let report = db
        .import(
            &[tracker, feed, cves_zip, mixed],
            false,
            &Limits::default(),
            &NoProgress,
        )
        .unwrap();
    assert_eq!(
        summary(&report),
        [
            ("tracker", "debian-tracker", 5, 0),
            ("nvd-feed.txt", "nvd", 4, 0),
            ("cves.zip", "cve5", 2, 1),
            ("mixed", "osv+cve5+nvd+debian-tracker", 1 + 1 + 1 + 3, 1),
        ]
    );
    let why = |source: usize| report.sources[source].rejected[0].clone();
    assert!(why(2).location.ends_with("cves.zip!cves/delta.json"), "{:?}", why(2));
    assert!(
        why(2)
            .reason
            .contains("keys {fetchTime, numberOfChanges, new, updated}"),
        "{:?}",
        why(2)
    );
    assert!(why(3).location.ends_with("mixed/broken.json"), "{:?}", why(3));
    assert!(why(3).reason.contains("not JSON"), "{:?}", why(3));
}

/// A database holding the shared sample, and its status.
fn database_with_sample() -> (tempfile::TempDir, VulnDb, crate::Status) {
    let data_dir = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data_dir.path());
    db.import(&[shared("sample.osv.jsonl")], false, &Limits::default(), &NoProgress)
        .unwrap();
    let status = db.status().unwrap().unwrap();
    (data_dir, db, status)
}

/// A file named on its own must be in a known format; what it looked like is said.
#[test]
fn content_in_no_known_format_is_refused_and_changes_nothing() {
    let (_data_dir, db, before) = database_with_sample();
    let input = tempfile::tempdir().unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "notes.txt",
            b"Hello, these are not advisories.\n".to_vec(),
            "not JSON (it starts with \"Hello, these are\")",
        ),
        (
            "blob.bin",
            vec![0x00, 0x9f, 0x92, 0x96, 0xff],
            "not JSON (it starts with the bytes 009f9296ff)",
        ),
        ("blob.gz", gzip(&[0xde, 0xad, 0xbe, 0xef]), "the bytes deadbeef"),
        (
            "config.json",
            br#"{"registry": {"url": "https://example"}, "retries": 3}"#.to_vec(),
            "a JSON object with the keys {registry, retries} is none of",
        ),
        // NVD's old 1.1 feeds are not read.
        (
            "nvdcve-1.1-2019.json",
            br#"{"CVE_data_type": "CVE", "CVE_data_format": "MITRE", "CVE_Items": []}"#.to_vec(),
            "keys {CVE_data_type, CVE_data_format, CVE_Items}",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = input.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = db.import(&[path], false, &Limits::default(), &NoProgress).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("not a recognised vulnerability format"),
            "{name}: {message}"
        );
        assert!(message.contains(want), "{name}: {message}");
        assert!(
            message.contains("previous database stays in force"),
            "{name}: {message}"
        );
        assert_eq!(db.status().unwrap().unwrap(), before, "{name}");
    }
    // An empty file is no records, not an error.
    let empty = input.path().join("empty.json");
    fs::write(&empty, "\n \n").unwrap();
    let report = db.import(&[empty], false, &Limits::default(), &NoProgress).unwrap();
    assert_eq!(
        (report.sources[0].records, report.sources[0].format.as_str()),
        (0, "none")
    );
}

/// A truncated download, a bomb, or one entry too large to hold stops the
/// import; the previous generation stays in force.
#[test]
fn broken_streams_leave_the_previous_generation() {
    let (_data_dir, db, before) = database_with_sample();
    let input = tempfile::tempdir().unwrap();

    let nvd = fs::read(data("nvd/nvd-api-page.json")).unwrap();
    let tracker = fs::read(data("debian-tracker/vunnel-debian.json")).unwrap();
    let tracker_gz = gzip(&tracker);
    let mut bomb = br#"{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": ["#.to_vec();
    bomb.extend(vec![b' '; 4 << 20]);
    let small_input = Limits {
        max_input_bytes: 1 << 20,
        ..Limits::default()
    };
    let small_record = Limits {
        max_record_bytes: 2048,
        ..Limits::default()
    };
    let cases: [(&str, Vec<u8>, Limits, &str); 6] = [
        (
            "nvd.json",
            nvd[..nvd.len() / 2].to_vec(),
            Limits::default(),
            "EOF while parsing",
        ),
        (
            "tracker.json.gz",
            tracker_gz[..tracker_gz.len() / 2].to_vec(),
            Limits::default(),
            "incomplete",
        ),
        (
            "tracker.json",
            tracker[..tracker.len() - 40].to_vec(),
            Limits::default(),
            "EOF while parsing",
        ),
        ("bomb.json.gz", gzip(&bomb), small_input, "compression bomb"),
        // CVE-2023-27314's entry alone is larger than 2 KiB.
        (
            "nvd-big.json",
            nvd.clone(),
            small_record,
            "over the 2048 byte record limit",
        ),
        (
            "tracker-big.json",
            tracker.clone(),
            Limits {
                max_record_bytes: 512,
                ..Limits::default()
            },
            "over the 512 byte record limit",
        ),
    ];
    for (name, bytes, limits, want) in cases {
        let path = input.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = db.import(&[path], false, &limits, &NoProgress).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, VulnDbError::Unreadable { .. }), "{name}: {message}");
        assert!(message.contains(want), "{name}: {message}");
        assert_eq!(db.status().unwrap().unwrap(), before, "{name}");
    }
}

/// Generated, not real: documents far larger than the record limit import
/// because only one entry at a time is held, never the document.
#[test]
fn large_documents_are_read_one_entry_at_a_time() {
    const ENTRIES: usize = 50_000;
    let limits = Limits {
        max_record_bytes: 64 << 10,
        ..Limits::default()
    };
    let input = tempfile::tempdir().unwrap();

    let mut nvd =
        String::from(r#"{"resultsPerPage": 50000, "format": "NVD_CVE", "version": "2.0", "vulnerabilities": ["#);
    for i in 0..ENTRIES {
        if i > 0 {
            nvd.push(',');
        }
        nvd.push_str(&format!(
            r#"{{"cve": {{"id": "CVE-2099-{i:05}", "lastModified": "2025-01-01T00:00:00.000", "vulnStatus": "Analyzed", "metrics": {{"cvssMetricV31": [{{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {{"vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}}}]}}}}}}"#
        ));
    }
    nvd.push_str("]}");
    // Two packages per CVE, so records gather entries from across the document.
    let mut tracker = serde_json::Map::new();
    for package in ["alpha", "omega"] {
        let issues: serde_json::Map<String, Value> = (0..ENTRIES / 2)
            .map(|i| {
                (
                    format!("CVE-2099-{i:05}"),
                    json!({"description": "generated", "releases": {"bookworm": {"status": "open", "urgency": "low"}}}),
                )
            })
            .collect();
        tracker.insert(package.into(), Value::Object(issues));
    }
    let tracker = Value::Object(tracker).to_string();
    for document in [&nvd, &tracker] {
        assert!(
            document.len() as u64 > 20 * limits.max_record_bytes,
            "{}",
            document.len()
        );
    }
    let nvd_path = input.path().join("nvd.json.gz");
    fs::write(&nvd_path, gzip(nvd.as_bytes())).unwrap();
    let tracker_path = input.path().join("tracker.json");
    fs::write(&tracker_path, tracker).unwrap();

    let data_dir = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data_dir.path());
    let report = db
        .import(&[nvd_path, tracker_path], false, &limits, &NoProgress)
        .unwrap();
    let entries = ENTRIES as u64;
    assert_eq!(
        summary(&report),
        [
            ("nvd.json.gz", "nvd", entries, 0),
            ("tracker.json", "debian-tracker", entries / 2, 0)
        ]
    );
    let loaded = db.load().unwrap().unwrap();
    let record = loaded
        .advisories
        .iter()
        .find(|a| a.id == "DEBIAN-CVE-2099-01234")
        .unwrap();
    let packages: Vec<&str> = record
        .affected
        .iter()
        .map(|a| a.package.as_ref().unwrap().name.as_str())
        .collect();
    assert_eq!(packages, ["alpha", "omega"]);
}

#[test]
fn the_first_bytes_tell_the_format() {
    let nvd = fs::read(data("nvd/nvd-api-page.json")).unwrap();
    let tracker = fs::read(data("debian-tracker/vunnel-debian.json")).unwrap();
    let cve5 = fs::read(data("cve5/CVE-2023-44487.json")).unwrap();
    let ghsa = fs::read(data("ghsa/GHSA-j8r2-6x86-q33q.json")).unwrap();
    // An OSV record whose `id` comes after a long `details`: beyond what is read.
    let late_id = format!(r#"{{"details": "{}", "id": "X-1"}}"#, "x".repeat(100_000));
    let cases: [(&str, &[u8], Result<Shape, &str>); 10] = [
        ("nvd page, cut at 200 bytes", &nvd[..200], Ok(Shape::NvdDocument)),
        ("tracker, cut at 300 bytes", &tracker[..300], Ok(Shape::DebianTracker)),
        ("cve5, cut at 100 bytes", &cve5[..100], Ok(Shape::Records)),
        ("ghsa", &ghsa, Ok(Shape::Records)),
        ("an array", b"[{\"id\": \"A\"}]", Ok(Shape::Records)),
        ("json lines", b"{\"id\": \"A\"}\n{\"id\": \"B\"}\n", Ok(Shape::Records)),
        ("nothing", b"", Ok(Shape::Empty)),
        (
            "late id, first 64 KiB",
            &late_id.as_bytes()[..64 << 10],
            Ok(Shape::Records),
        ),
        (
            "unknown object",
            br#"{"a": {"b": 1}, "c": "{\"id\": 1}"}"#,
            Err("keys {a, c}"),
        ),
        ("text", b"id,severity\n", Err("it starts with \"id,severity\\n\"")),
    ];
    for (name, head, want) in cases {
        match (recognise(head), want) {
            (Ok(shape), Ok(want)) => assert_eq!(shape, want, "{name}"),
            (Err(Unrecognised::UnknownJson(why) | Unrecognised::NotJson(why)), Err(want)) => {
                assert!(why.contains(want), "{name}: {why}")
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}
