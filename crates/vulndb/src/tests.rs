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

fn import(db: &VulnDb, inputs: &[PathBuf]) -> Result<ImportReport, VulnDbError> {
    db.import(inputs, false, &Limits::default(), &NoProgress)
}

fn ids(db: &VulnDb) -> Vec<String> {
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
