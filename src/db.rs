//! `portcullis db import|status`: the offline vulnerability database.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use portcullis_vulndb::{rfc3339, ImportReport, Limits, Progress, VulnDb};

use crate::settings::Settings;
use crate::Format;

/// A byte-count bar per source on a terminal; indicatif draws nothing when
/// standard error is not one (CI logs stay clean).
struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, source: &str, total_bytes: u64) {
        self.0.reset();
        self.0.set_length(total_bytes);
        self.0.set_message(source.to_string());
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

pub fn import(settings: &Settings, paths: &[PathBuf], replace: bool, format: Format) -> anyhow::Result<()> {
    let db = VulnDb::in_data_dir(&settings.data);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let limits = Limits {
        max_input_bytes: settings.scan_max_layer_bytes,
        max_record_bytes: settings.scan_max_file_bytes,
    };
    let report = db.import(paths, replace, &limits, &Bar(bar))?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Text => print_report(&report),
    }
    Ok(())
}

fn print_report(report: &ImportReport) {
    for s in &report.sources {
        println!(
            "{} ({}): {} records imported, {} rejected, {} duplicate ids",
            s.name, s.format, s.records, s.rejected_count, s.duplicates
        );
        for r in &s.rejected {
            println!("  rejected {}: {}", r.location, r.reason);
        }
        let unlisted = s.rejected_count - s.rejected.len() as u64;
        if unlisted > 0 {
            println!("  … and {unlisted} more rejected records");
        }
    }
    if !report.kept.is_empty() {
        println!("kept from earlier imports: {}", report.kept.join(", "));
    }
    println!("database generation {} is in force", report.generation);
}

pub fn status(settings: &Settings, format: Format) -> anyhow::Result<()> {
    let db = VulnDb::in_data_dir(&settings.data);
    let status = db.status()?;
    match (format, status) {
        (Format::Json, status) => println!("{}", serde_json::to_string(&status)?),
        (Format::Text, None) => println!(
            "no vulnerability database in {} yet: run `portcullis db import FILE…`",
            db.dir().display()
        ),
        (Format::Text, Some(s)) => {
            println!(
                "generation {}, imported {}, {} records",
                s.generation,
                rfc3339(s.imported_at),
                s.records()
            );
            for src in &s.sources {
                println!(
                    "  {:<28} {:<14} {:>8} records {:>6} rejected  imported {}  from {}",
                    src.name,
                    src.format,
                    src.records,
                    src.rejected,
                    rfc3339(src.imported_at),
                    src.origin
                );
            }
        }
    }
    Ok(())
}
