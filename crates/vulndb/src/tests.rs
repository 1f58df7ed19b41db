use std::io::Write;

use super::*;

pub(crate) fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vulndb")
        .join(name)
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub(crate) fn import(db: &VulnDb, inputs: &[PathBuf]) -> Result<ImportReport, VulnDbError> {
    db.import(inputs, false, &Limits::default(), &NoProgress)
}

pub(crate) fn ids(db: &VulnDb) -> Vec<String> {
    let mut ids: Vec<String> = db
        .load()
        .unwrap()
        .unwrap()
        .advisories
        .into_iter()
        .map(|a| a.id)
        .collect();
    ids.sort();
    ids
}

/// The record counts are the ones `shared/vulndb/README.md` states per file.
#[test]
fn every_shared_file_imports_whole() {
    let data = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    assert!(db.status().unwrap().is_none());
    let files = [
        ("pypi.osv.jsonl.gz", 2661),
        ("crates.osv.jsonl.gz", 1205),
        ("go.osv.jsonl.gz", 4291),
        ("npm.osv.jsonl.gz", 467),
        ("debian.osv.jsonl.gz", 8911),
        ("alpine.osv.jsonl.gz", 2469),
        ("almalinux.osv.jsonl.gz", 5637),
    ];
    let inputs: Vec<PathBuf> = files.iter().map(|(f, _)| shared(f)).collect();
    let report = import(&db, &inputs).unwrap();
    for ((name, want), got) in files.iter().zip(&report.sources) {
        assert_eq!(got.name, *name);
        assert_eq!(
            (got.records, got.rejected_count, got.duplicates),
            (*want, 0, 0),
            "{name}"
        );
    }
    let status = db.status().unwrap().unwrap();
    assert_eq!(status.records(), 25_641);
    let loaded = db.load().unwrap().unwrap();
    assert_eq!(loaded.advisories.len(), 25_641);
    assert!(loaded.advisories.iter().any(|a| a.id == "GO-2023-2044"));
}

#[test]
fn directories_zip_arrays_and_pretty_records() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(shared("sample.osv.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = sample.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // osv.dev's layout: one pretty-printed file per advisory, in folders.
    let tree = input.path().join("osv");
    std::fs::create_dir_all(tree.join("nested")).unwrap();
    for r in &records[..10] {
        let id = r["id"].as_str().unwrap().replace(':', "_");
        std::fs::write(
            tree.join(format!("{id}.json")),
            serde_json::to_string_pretty(r).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(
        tree.join("nested/array.json.gz"),
        gzip(serde_json::to_string(&records[10..15]).unwrap().as_bytes()),
    )
    .unwrap();
    std::fs::write(tree.join("README.md"), "not a record").unwrap();
    // A zip like osv.dev's all.zip.
    let zip_path = input.path().join("all.zip");
    let mut zip = zip::ZipWriter::new(File::create(&zip_path).unwrap());
    for r in &records[15..] {
        let id = r["id"].as_str().unwrap().replace(':', "_");
        zip.start_file(format!("{id}.json"), zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(serde_json::to_string_pretty(r).unwrap().as_bytes())
            .unwrap();
    }
    zip.finish().unwrap();

    let db = VulnDb::in_data_dir(data.path());
    let report = import(&db, &[tree, zip_path]).unwrap();
    let counts: Vec<(&str, u64, u64)> = report
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.records, s.rejected_count))
        .collect();
    assert_eq!(counts, [("osv", 15, 0), ("all.zip", 15, 0)]);
    let mut want: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    want.sort();
    assert_eq!(ids(&db), want);
}

#[test]
fn bad_records_are_counted_and_named_and_the_rest_imported() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string(shared("sample.osv.jsonl")).unwrap();
    let mut lines: Vec<Vec<u8>> = sample.lines().take(5).map(|l| l.as_bytes().to_vec()).collect();
    lines.insert(1, b"{\"id\": \"BROKEN-1\", \"affected\": ".to_vec());
    lines.insert(3, br#"{"summary":"no id here"}"#.to_vec());
    lines.insert(4, vec![b'{', 0xff, 0xfe, b'}']);
    lines.insert(
        5,
        format!("{{\"id\":\"HUGE\",\"details\":\"{}\"}}", "x".repeat(5000)).into_bytes(),
    );
    lines.push(lines[0].clone()); // the same id again
    let path = input.path().join("mixed.jsonl");
    std::fs::write(&path, lines.join(&b'\n')).unwrap();
    let db = VulnDb::in_data_dir(data.path());
    let limits = Limits {
        max_record_bytes: 4096,
        ..Limits::default()
    };
    let report = db.import(&[path], false, &limits, &NoProgress).unwrap();
    let s = &report.sources[0];
    assert_eq!((s.records, s.rejected_count, s.duplicates), (5, 4, 1));
    let got: Vec<(&str, &str)> = s
        .rejected
        .iter()
        .map(|r| (r.location.rsplit('/').next().unwrap(), r.reason.as_str()))
        .collect();
    let expect = [
        ("mixed.jsonl:2", "not an OSV record"),
        ("mixed.jsonl:4", "missing field `id`"),
        ("mixed.jsonl:5", "not UTF-8"),
        ("mixed.jsonl:6", "over the 4096 byte limit"),
    ];
    assert_eq!(got.len(), expect.len(), "{got:?}");
    for ((loc, why), (want_loc, want_why)) in got.iter().zip(expect) {
        assert_eq!(*loc, want_loc);
        assert!(why.contains(want_why), "{loc}: {why}");
    }
    assert_eq!(db.status().unwrap().unwrap().sources[0].rejected, 4);
}

/// A failed import (a truncated gzip, a bomb) changes nothing; a good one
/// replaces only the sources it names.
#[test]
fn imports_are_atomic_and_replace_by_source() {
    let data = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    import(&db, &[shared("sample.osv.jsonl"), shared("npm.osv.jsonl.gz")]).unwrap();
    let before = db.status().unwrap().unwrap();
    let ids_before = ids(&db);
    assert_eq!(before.records(), 30 + 467);

    let npm = std::fs::read(shared("npm.osv.jsonl.gz")).unwrap();
    let truncated = input.path().join("npm.osv.jsonl.gz");
    std::fs::write(&truncated, &npm[..npm.len() / 2]).unwrap();
    let err = import(&db, &[shared("alpine.osv.jsonl.gz"), truncated]).unwrap_err();
    assert!(err.to_string().contains("previous database stays in force"), "{err}");
    assert_eq!(db.status().unwrap().unwrap(), before);
    assert_eq!(ids(&db), ids_before);

    let bomb = input.path().join("bomb.jsonl.gz");
    std::fs::write(&bomb, gzip(&vec![b' '; 4 << 20])).unwrap();
    let small = Limits {
        max_input_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = db.import(&[bomb], false, &small, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("compression bomb"), "{err}");
    assert_eq!(db.status().unwrap().unwrap(), before);

    // Re-importing npm under the same name replaces it; sample is kept.
    let two = input.path().join("two");
    std::fs::create_dir(&two).unwrap();
    let mut npm_lines = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&npm[..]), &mut npm_lines).unwrap();
    std::fs::write(
        two.join("x.jsonl"),
        npm_lines.lines().take(2).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let renamed = input.path().join("npm.osv.jsonl.gz");
    std::fs::remove_file(&renamed).unwrap();
    std::fs::rename(&two, &renamed).unwrap();
    let report = import(&db, &[renamed]).unwrap();
    assert_eq!(report.kept, ["sample.osv.jsonl"]);
    let after = db.status().unwrap().unwrap();
    assert_eq!(after.records(), 32);
    assert!(after.generation > before.generation);
    // Only the generation in force is left on disk.
    let dirs: Vec<String> = std::fs::read_dir(db.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<u64>().is_ok())
        .collect();
    assert_eq!(dirs, [after.generation.to_string()]);

    db.import(&[shared("sample.osv.jsonl")], true, &Limits::default(), &NoProgress)
        .unwrap();
    assert_eq!(db.status().unwrap().unwrap().records(), 30, "replace_all drops npm");
}

#[test]
fn one_import_at_a_time_and_clear_input_errors() {
    let data = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    let err = import(&db, &[PathBuf::from("/nonexistent/osv.json")]).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = import(&db, &[shared("sample.osv.jsonl"), shared("sample.osv.jsonl")]).unwrap_err();
    assert!(matches!(err, VulnDbError::DuplicateSource(_)), "{err}");
    std::fs::create_dir_all(db.dir()).unwrap();
    let held = File::create(db.dir().join("import.lock")).unwrap();
    held.lock().unwrap();
    let err = import(&db, &[shared("sample.osv.jsonl")]).unwrap_err();
    assert!(matches!(err, VulnDbError::Busy(_)), "{err}");
    drop(held);
    import(&db, &[shared("sample.osv.jsonl")]).unwrap();
}

mod index {
    use super::*;
    use portcullis_scan::layer::{Component, ImageFacts};
    use portcullis_scan::matching::{match_image, AdvisoryStore, VulnIndex};
    use portcullis_scan::severity::Severity;
    use portcullis_scan::{os_release, Ecosystem, Package};

    fn package(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem,
            name: name.into(),
            version: version.into(),
            architecture: None,
            source_name: name.into(),
            source_version: version.into(),
            license: None,
        }
    }

    fn image(os: Option<&str>, packages: Vec<Package>) -> ImageFacts {
        ImageFacts {
            os: os.map(|o| os_release::parse(o).unwrap()),
            components: packages
                .into_iter()
                .map(|package| Component {
                    package,
                    layer: "sha256:l".into(),
                    path: "p".into(),
                    purl: String::new(),
                })
                .collect(),
            warnings: vec![],
        }
    }

    /// Every version an advisory names, and one below all of them: the
    /// places where range evaluation can go wrong.
    fn probe_versions(a: &portcullis_scan::osv::Advisory) -> Vec<String> {
        let mut out = vec!["0.0.0".to_string()];
        for aff in &a.affected {
            out.extend(aff.versions.iter().take(2).cloned());
            for r in &aff.ranges {
                for e in &r.events {
                    use portcullis_scan::osv::Event::*;
                    let (Introduced(v) | Fixed(v) | LastAffected(v) | Limit(v)) = e;
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The on-disk index and the in-memory one find exactly the same
    /// findings, severities included, for packages at every boundary
    /// version of the shared data's advisories.
    #[test]
    fn disk_and_memory_agree_on_the_shared_data() {
        let data = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(data.path());
        let files = [
            "pypi.osv.jsonl.gz",
            "go.osv.jsonl.gz",
            "npm.osv.jsonl.gz",
            "crates.osv.jsonl.gz",
            "debian-dsa-dla.osv.jsonl.gz",
            "alpine.osv.jsonl.gz",
            "almalinux.osv.jsonl.gz",
        ];
        import(&db, &files.map(shared)).unwrap();
        let loaded = db.load().unwrap().unwrap();
        let (status, disk) = db.open().unwrap().unwrap();
        assert_eq!(status.generation, loaded.status.generation);
        let memory = VulnIndex::new(loaded.advisories.clone());
        assert_eq!(disk.len() as usize, memory.len());
        // Every 41st advisory, as a language package or in its release.
        let mut checked = 0;
        for a in loaded.advisories.iter().step_by(41) {
            let Some(p) = a.affected.iter().find_map(|x| x.package.as_ref()) else {
                continue;
            };
            let (os, eco) = match p.ecosystem.split_once(':') {
                Some(("Debian", v)) => (Some(format!("ID=debian\nVERSION_ID=\"{v}\"\n")), Ecosystem::Deb),
                Some(("Alpine", v)) => (Some(format!("ID=alpine\nVERSION_ID={}.0\n", &v[1..])), Ecosystem::Apk),
                Some(("AlmaLinux", v)) => (Some(format!("ID=almalinux\nVERSION_ID={v}\n")), Ecosystem::Rpm),
                _ => match p.ecosystem.as_str() {
                    "PyPI" => (None, Ecosystem::Python),
                    "Go" => (None, Ecosystem::Go),
                    "npm" => (None, Ecosystem::Npm),
                    "crates.io" => (None, Ecosystem::Cargo),
                    _ => continue,
                },
            };
            let packages = probe_versions(a).iter().map(|v| package(eco, &p.name, v)).collect();
            let img = image(os.as_deref(), packages);
            let (want, got) = (match_image(&img, &memory).unwrap(), match_image(&img, &disk).unwrap());
            assert_eq!(got, want, "{}", a.id);
            checked += want.len();
        }
        assert!(checked > 150, "only {checked} findings compared");
    }

    /// A distribution's word counts only from a source of that
    /// distribution's records alone: a DEBIAN-CVE record marking a package
    /// unimportant lowers nothing when it comes inside a mixed feed (a
    /// compromised mirror of a language feed), and rates the finding when
    /// a Debian-only source carries it.
    #[test]
    fn only_a_distributions_own_source_speaks_for_it() {
        let nvd = r#"{"cve":{"id":"CVE-2099-7","sourceIdentifier":"cve@mitre.org","vulnStatus":"Analyzed","lastModified":"2099-01-01T00:00:00.000","metrics":{"cvssMetricV31":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]}}}"#;
        let dsa = r#"{"id":"DSA-1-1","upstream":["CVE-2099-7"],"affected":[{"package":{"ecosystem":"Debian:12","name":"foo"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2-1"}]}]}]}"#;
        let note = r#"{"id":"DEBIAN-CVE-2099-7","upstream":["CVE-2099-7"],"affected":[{"package":{"ecosystem":"Debian:12","name":"foo"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"99"}]}],"ecosystem_specific":{"urgency":"unimportant"}}]}"#;
        let go = r#"{"id":"GO-2099-1","affected":[{"package":{"ecosystem":"Go","name":"example.com/x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}"#;
        let img = image(
            Some("ID=debian\nVERSION_ID=\"12\"\n"),
            vec![Package {
                ecosystem: Ecosystem::Deb,
                ..package(Ecosystem::Deb, "foo", "1-1")
            }],
        );
        let cases: [(&str, String, &[(&str, Severity, &str)]); 2] = [
            (
                "mixed.jsonl",
                format!("{go}\n{note}\n"),
                &[
                    ("DEBIAN-CVE-2099-7", Severity::Critical, "nvd"),
                    ("DSA-1-1", Severity::Critical, "nvd"),
                ],
            ),
            (
                "debian.jsonl",
                format!("{note}\n"),
                &[
                    ("DEBIAN-CVE-2099-7", Severity::Low, "debian"),
                    ("DSA-1-1", Severity::Low, "debian"),
                ],
            ),
        ];
        for (name, feed, want) in cases {
            let data = tempfile::tempdir().unwrap();
            let input = tempfile::tempdir().unwrap();
            let db = VulnDb::in_data_dir(data.path());
            let mut files = Vec::new();
            for (file, text) in [
                ("nvd.jsonl", nvd.to_string()),
                ("dsa.jsonl", dsa.to_string()),
                (name, feed),
            ] {
                let path = input.path().join(file);
                std::fs::write(&path, text).unwrap();
                files.push(path);
            }
            import(&db, &files).unwrap();
            let (_, index) = db.open().unwrap().unwrap();
            let mut got: Vec<(String, Severity, String)> = match_image(&img, &index)
                .unwrap()
                .into_iter()
                .flat_map(|f| {
                    let (sev, src) = (f.severity, f.severity_source.clone().unwrap_or_default());
                    f.ids
                        .into_iter()
                        .chain(f.related)
                        .filter(|id| !id.starts_with("CVE-"))
                        .map(move |id| (id, sev, src.clone()))
                })
                .collect();
            got.sort();
            let want: Vec<(String, Severity, String)> = want
                .iter()
                .map(|(i, s, o)| (i.to_string(), *s, o.to_string()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    /// A DSA's severity comes from the CVSS of the CVEs it fixes, found in
    /// another source imported later; re-matching (no re-scan) sees it,
    /// and a source dropped takes its vectors along.
    #[test]
    fn severities_come_from_other_sources_and_follow_imports() {
        let data = tempfile::tempdir().unwrap();
        let input = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(data.path());
        let dsa = input.path().join("dsa.jsonl");
        std::fs::write(
            &dsa,
            r#"{"id":"DSA-1-1","upstream":["CVE-2099-1","CVE-2099-2"],"affected":[{"package":{"ecosystem":"Debian:12","name":"foo"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2-1"}]}]}]}"#,
        )
        .unwrap();
        import(&db, std::slice::from_ref(&dsa)).unwrap();
        let img = image(
            Some("ID=debian\nVERSION_ID=\"12\"\n"),
            vec![Package {
                ecosystem: Ecosystem::Deb,
                ..package(Ecosystem::Deb, "foo", "1.1-1")
            }],
        );
        let rated = |db: &VulnDb| {
            let (_, index) = db.open().unwrap().unwrap();
            let f = match_image(&img, &index).unwrap();
            assert_eq!(f.len(), 1);
            (f[0].severity, f[0].severity_source.clone(), f[0].cvss_score)
        };
        assert_eq!(rated(&db), (Severity::Unknown, None, None));
        // NVD rates one CVE 7.5, CVE 5's CNA the other 9.8: the worst counts.
        let nvd = input.path().join("nvd.jsonl");
        std::fs::write(
            &nvd,
            r#"{"cve":{"id":"CVE-2099-1","sourceIdentifier":"cve@mitre.org","vulnStatus":"Analyzed","lastModified":"2099-01-01T00:00:00.000","metrics":{"cvssMetricV31":[{"source":"nvd@nist.gov","type":"Primary","cvssData":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}]}}}"#,
        )
        .unwrap();
        import(&db, std::slice::from_ref(&nvd)).unwrap();
        assert_eq!(rated(&db), (Severity::High, Some("nvd".into()), Some(7.5)));
        let cve5 = input.path().join("cve5.jsonl");
        std::fs::write(
            &cve5,
            r#"{"dataType":"CVE_RECORD","cveMetadata":{"cveId":"CVE-2099-2","state":"PUBLISHED","datePublished":"2099-01-01T00:00:00.000Z"},"containers":{"cna":{"metrics":[{"cvssV3_1":{"version":"3.1","vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]}}}"#,
        )
        .unwrap();
        import(&db, std::slice::from_ref(&cve5)).unwrap();
        assert_eq!(
            rated(&db),
            (Severity::High, Some("nvd".into()), Some(7.5)),
            "NVD comes before CVE 5"
        );
        // The tracker's urgency for the CVE, for this package, wins over both.
        let tracker = input.path().join("tracker.jsonl");
        std::fs::write(
            &tracker,
            r#"{"id":"DEBIAN-CVE-2099-1","upstream":["CVE-2099-1"],"affected":[{"package":{"ecosystem":"Debian:12","name":"foo"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2-1"}]}],"ecosystem_specific":{"urgency":"low"}}]}"#,
        )
        .unwrap();
        import(&db, std::slice::from_ref(&tracker)).unwrap();
        let (_, index) = db.open().unwrap().unwrap();
        let found = match_image(&img, &index).unwrap();
        let got: Vec<_> = found
            .iter()
            .map(|f| (f.ids[0].as_str(), f.severity, f.severity_source.as_deref()))
            .collect();
        // CVE-2099-2 has no per-CVE record: the DSA stays, rated by Debian's
        // urgency of the CVE it does have.
        assert_eq!(
            got,
            [
                ("DEBIAN-CVE-2099-1", Severity::Low, Some("debian")),
                ("DSA-1-1", Severity::Low, Some("debian"))
            ]
        );
        // Replacing the NVD source with an empty one drops its vectors.
        std::fs::write(&nvd, "").unwrap();
        import(&db, std::slice::from_ref(&nvd)).unwrap();
        let (_, index) = db.open().unwrap().unwrap();
        assert!(index.vectors(&["CVE-2099-1"]).unwrap().is_empty());
        assert_eq!(index.vectors(&["CVE-2099-2"]).unwrap().len(), 1);
    }

    /// A data directory written before the index existed gets one on open;
    /// a record repeated in a source is replaced by its later copy.
    #[test]
    fn old_generations_are_indexed_and_later_duplicates_win() {
        let data = tempfile::tempdir().unwrap();
        let input = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(data.path());
        let file = input.path().join("dup.jsonl");
        let record = |fixed: &str| {
            format!(
                r#"{{"id":"PYSEC-X","affected":[{{"package":{{"ecosystem":"PyPI","name":"Foo_Bar"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
            )
        };
        std::fs::write(&file, format!("{}\n{}\n", record("1.0"), record("2.0"))).unwrap();
        let report = import(&db, std::slice::from_ref(&file)).unwrap();
        assert_eq!((report.sources[0].records, report.sources[0].duplicates), (1, 1));
        let fixed = |db: &VulnDb| {
            let (_, index) = db.open().unwrap().unwrap();
            let c = index.candidates("PyPI", "foo-bar").unwrap();
            c.iter()
                .map(|c| {
                    c.affected
                        .fixed_after("0.1", portcullis_scan::version::pep440_cmp)
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fixed(&db), ["2.0"]);
        let gen_dir = db.dir().join(db.status().unwrap().unwrap().generation.to_string());
        std::fs::remove_file(gen_dir.join("index.sqlite")).unwrap();
        assert_eq!(fixed(&db), ["2.0"], "rebuilt from the source file");
        assert!(gen_dir.join("index.sqlite").exists());
    }
}

/// Debian 12 at its release versions (a real image's package list, see
/// `tests/data/debian12/PROVENANCE.md`) gets exactly the DSA and DLA
/// findings that Debian's own `dpkg --compare-versions` says it should; the
/// same packages fully updated get none.
#[test]
fn debian_12_gets_what_dpkg_says_it_should() {
    use portcullis_scan::layer::{Component, ImageFacts};
    use portcullis_scan::matching::match_image;
    use std::collections::BTreeSet;
    let data = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    let dsa_dla = shared("debian-dsa-dla.osv.jsonl.gz");
    import(&db, std::slice::from_ref(&dsa_dla)).unwrap();
    let (_, index) = db.open().unwrap().unwrap();
    // The oracle: every Debian:12 range of the data, judged by dpkg itself.
    let text = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(File::open(&dsa_dla).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    let mut ranges: Vec<(String, String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        for a in r["affected"].as_array().into_iter().flatten() {
            if a["package"]["ecosystem"] != "Debian:12" {
                continue;
            }
            for range in a["ranges"].as_array().into_iter().flatten() {
                let fixed = range["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find_map(|e| e["fixed"].as_str().map(String::from));
                ranges.push((
                    r["id"].as_str().unwrap().into(),
                    a["package"]["name"].as_str().unwrap().into(),
                    fixed,
                ));
            }
        }
    }
    let dpkg_lt = |a: &str, b: &str| {
        std::process::Command::new("dpkg")
            .args(["--compare-versions", a, "lt", b])
            .status()
            .expect("Debian's dpkg")
            .success()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/debian12");
    let mut counts = Vec::new();
    for name in ["status-12.0", "status-12.0-full", "status-12-updated-full"] {
        let parsed = portcullis_scan::dpkg::parse_status(&std::fs::read_to_string(dir.join(name)).unwrap());
        let image = ImageFacts {
            os: Some(portcullis_scan::os_release::parse("ID=debian\nVERSION_ID=\"12\"\n").unwrap()),
            components: parsed
                .packages
                .iter()
                .map(|p| Component {
                    package: p.clone(),
                    layer: "sha256:l".into(),
                    path: "var/lib/dpkg/status".into(),
                    purl: String::new(),
                })
                .collect(),
            warnings: vec![],
        };
        let sources: BTreeSet<(String, String)> = parsed
            .packages
            .iter()
            .map(|p| (p.source_name.clone(), p.source_version.clone()))
            .collect();
        let mut want = BTreeSet::new();
        for (source, version) in &sources {
            for (id, _, fixed) in ranges.iter().filter(|(_, s, _)| s == source) {
                if fixed.as_deref().is_none_or(|f| dpkg_lt(version, f)) {
                    want.insert((id.clone(), source.clone()));
                }
            }
        }
        let got: BTreeSet<(String, String)> = match_image(&image, &index)
            .unwrap()
            .into_iter()
            .flat_map(|f| {
                let source = parsed
                    .packages
                    .iter()
                    .find(|p| p.name == f.package)
                    .map(|p| p.source_name.clone())
                    .unwrap();
                // A regression update joins the advisory it repairs (its ids).
                f.ids
                    .into_iter()
                    .chain(f.related)
                    .filter(|r| r.starts_with("DSA-") || r.starts_with("DLA-"))
                    .map(move |id| (id, source.clone()))
            })
            .collect();
        assert_eq!(got, want, "{name}");
        let dla = want.iter().filter(|(id, _)| id.starts_with("DLA-")).count();
        counts.push((name, want.len(), dla));
    }
    assert_eq!(
        counts,
        [
            ("status-12.0", 27, 0),
            ("status-12.0-full", 109, 8),
            ("status-12-updated-full", 0, 0)
        ],
        "the counts dpkg gave when the fixtures were made"
    );
}

/// Only this importer's conversions of NVD and CVE 5 data may rank a
/// vector as theirs: an OSV feed that writes `severity_origins` itself,
/// under a CVE id, is ranked as the OSV feed it is, and the stored copy no
/// longer carries the claim (an index rebuilt from it agrees).
#[test]
fn an_osv_feed_cannot_rank_its_vectors_as_nvd() {
    use portcullis_scan::matching::AdvisoryStore;
    let data = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    let input = tempfile::tempdir().unwrap();
    let forged = input.path().join("feed.jsonl");
    std::fs::write(
        &forged,
        concat!(
            r#"{"id":"CVE-2024-9999","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],"database_specific":{"severity_origins":["nvd"],"other":1}}"#,
            "\n",
            // The key spelt with an escape is the same key.
            r#"{"id":"CVE-2024-9998","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],"database_specific":{"severity\u005forigins":["nvd"]}}"#,
        ),
    )
    .unwrap();
    let converted = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nvd/nvd-api-single-entry.json");
    import(&db, &[forged, converted]).unwrap();
    let origins = |db: &VulnDb, id: &str| -> Vec<String> {
        let (_, index) = db.open().unwrap().unwrap();
        index.vectors(&[id]).unwrap().into_iter().map(|v| v.origin).collect()
    };
    assert_eq!(origins(&db, "CVE-2024-9999"), ["osv"]);
    assert_eq!(origins(&db, "CVE-2024-9998"), ["osv"]);
    assert!(origins(&db, "CVE-2022-1576").iter().all(|o| o.starts_with("nvd")));
    // The index built again from the stored records says the same.
    let status = db.status().unwrap().unwrap();
    std::fs::remove_file(db.dir().join(status.generation.to_string()).join(crate::index::FILE)).unwrap();
    assert_eq!(origins(&db, "CVE-2024-9999"), ["osv"]);
    let stored = db.load().unwrap().unwrap();
    assert!(stored
        .advisories
        .iter()
        .any(|a| a.id == "CVE-2024-9999" && a.specific.severity_origins.is_empty()));
}

/// A scan holding the index of a generation that a later import removes
/// keeps reading it, from every connection it uses.
#[test]
fn an_open_index_outlives_its_generation() {
    use portcullis_scan::matching::AdvisoryStore;
    let data = tempfile::tempdir().unwrap();
    let db = VulnDb::in_data_dir(data.path());
    import(&db, &[shared("go.osv.jsonl.gz")]).unwrap();
    let (old, index) = db.open().unwrap().unwrap();
    let before = index.candidates("Go", "stdlib").unwrap().len();
    assert!(before > 100);
    import(&db, &[shared("npm.osv.jsonl.gz")]).unwrap();
    assert!(
        !db.dir().join(old.generation.to_string()).exists(),
        "the old generation is gone"
    );
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..20).map(|_| index.candidates("Go", "stdlib").unwrap().len()).max()))
            .collect();
        for w in workers {
            assert_eq!(w.join().unwrap(), Some(before));
        }
    });
}

/// The index opens by URI (`immutable`): a data directory whose name holds
/// the URI's own characters still names the same file.
#[test]
fn an_index_opens_under_any_directory_name() {
    use portcullis_scan::matching::AdvisoryStore;
    let root = tempfile::tempdir().unwrap();
    let odd = root.path().join("odd 100%?x=1#frag");
    // The same directory spelt with a leading `//` (POSIX keeps it).
    let doubled = std::path::PathBuf::from(format!("/{}", odd.display()));
    for data in [odd, doubled] {
        let db = VulnDb::in_data_dir(&data);
        import(&db, &[shared("npm.osv.jsonl.gz")]).unwrap();
        let (_, index) = db.open().unwrap().unwrap();
        assert!(
            !index.candidates("npm", "lodash").unwrap().is_empty(),
            "{}",
            data.display()
        );
    }
}
