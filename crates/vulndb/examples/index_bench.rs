//! Measures the on-disk index against the in-memory one, for
//! `bench/vulndb.sh`: open time, per-image match time, a re-match of many
//! SBOMs, and resident memory.
//!
//!     index_bench DATA_DIR IMAGE_FACTS.json [SBOMS]
//!
//! IMAGE_FACTS.json is an image's facts as `portcullis scan --format json`
//! prints them (`os` and `components`). Prints one JSON object.

use std::time::Instant;

use portcullis_scan::layer::ImageFacts;
use portcullis_scan::matching::{match_image, match_image_with, MatchCache, VulnIndex};
use portcullis_vulndb::VulnDb;

/// (current, peak) resident set in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (data, facts) = (&args[1], &args[2]);
    let sboms: usize = args.get(3).map_or(1000, |n| n.parse().expect("a count"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(facts).expect("facts file")).expect("JSON");
    let image = ImageFacts {
        os: serde_json::from_value(report["os"].clone()).expect("os"),
        components: serde_json::from_value(report["components"].clone()).expect("components"),
        warnings: vec![],
    };
    let db = VulnDb::in_data_dir(std::path::Path::new(data));
    let (rss_start, _) = rss();

    let mut opens = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let opened = db.open().expect("open").expect("a database");
        opens.push(ms(t));
        drop(opened);
    }
    let (_, index) = db.open().expect("open").expect("a database");
    // The first match after opening: the connections' page caches empty.
    let t = Instant::now();
    match_image(&image, &index).expect("match");
    let first_disk = ms(t);
    // Each image's first match, with nothing decoded yet: the index opened
    // anew (its connections' page caches and its candidate cache empty).
    let mut cold = Vec::new();
    for _ in 0..20 {
        let (_, fresh) = db.open().expect("open").expect("a database");
        let t = Instant::now();
        match_image(&image, &fresh).expect("match");
        cold.push(ms(t));
    }
    // Later matches of the same packages: from the candidate cache.
    let mut disk = Vec::new();
    let mut findings = 0;
    for _ in 0..20 {
        let t = Instant::now();
        findings = match_image(&image, &index).expect("match").len();
        disk.push(ms(t));
    }
    // Many stored SBOMs: the image with each package's version nudged per
    // copy, so lookups repeat (as across real images) but results vary.
    let variants: Vec<ImageFacts> = (0..sboms)
        .map(|k| {
            let mut v = image.clone();
            for (i, c) in v.components.iter_mut().enumerate() {
                if (i + k) % 10 == 0 {
                    c.package.source_version = format!("{}.{k}", c.package.source_version);
                }
            }
            v
        })
        .collect();
    let t = Instant::now();
    let mut cache = MatchCache::default();
    for v in &variants {
        match_image_with(v, &index, &mut cache).expect("match");
    }
    let rematch_disk = ms(t);
    drop(cache);
    let (rss_disk, hwm_disk) = rss();

    let t = Instant::now();
    let loaded = db.load().expect("load").expect("a database");
    let memory = VulnIndex::new(loaded.advisories);
    let load_memory = ms(t);
    let mut mem = Vec::new();
    let mut mem_findings = 0;
    for _ in 0..20 {
        let t = Instant::now();
        mem_findings = match_image(&image, &memory).expect("match").len();
        mem.push(ms(t));
    }
    let t = Instant::now();
    let mut cache = MatchCache::default();
    for v in &variants {
        match_image_with(v, &memory, &mut cache).expect("match");
    }
    let rematch_memory = ms(t);
    let (rss_memory, _) = rss();
    println!(
        "{}",
        serde_json::json!({
            "advisories": index.len(),
            "components": image.components.len(),
            "findings_disk": findings,
            "findings_memory": mem_findings,
            "open_ms_median": median(opens),
            "match_ms_disk_first": first_disk,
            "match_ms_disk_median": median(disk),
            "match_ms_disk_cold_median": median(cold),
            "match_ms_memory_median": median(mem),
            "rematch_sboms": sboms,
            "rematch_ms_disk": rematch_disk,
            "rematch_ms_memory": rematch_memory,
            "load_ms_memory": load_memory,
            "rss_kib_start": rss_start,
            "rss_kib_disk": rss_disk,
            "hwm_kib_disk": hwm_disk,
            "rss_kib_memory": rss_memory,
        })
    );
}
