//! `portcullis db import|export|status|update`: the offline vulnerability database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use portcullis_vulndb::{
    rfc3339, unix_now, ExportManifest, ImportReport, Limits, Outcome, Progress, UpdateReport, VulnDb,
};

use crate::settings::Settings;
use crate::signature::{self, Form, RegistryArgs};
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

fn bar() -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    )
}

/// Inputs are bounded like the scanner's layers and files.
pub fn limits(settings: &Settings) -> Limits {
    Limits {
        max_input_bytes: settings.scan_max_layer_bytes,
        max_record_bytes: settings.scan_max_file_bytes,
    }
}

pub fn import(settings: &Settings, paths: &[PathBuf], replace: bool, format: Format) -> anyhow::Result<()> {
    let db = VulnDb::in_data_dir(&settings.data);
    let bar = bar();
    if let [path] = paths {
        if portcullis_vulndb::is_export(path) {
            let (report, export) = db.import_export(path, &limits(settings), &Bar(bar))?;
            match format {
                Format::Json => println!("{}", serde_json::json!({"import": report, "export": export})),
                Format::Text => {
                    print_export(&export);
                    print_report(&report);
                }
            }
            return Ok(());
        }
    }
    let report = db.import(paths, replace, &limits(settings), &Bar(bar))?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Text => print_report(&report),
    }
    Ok(())
}

/// What an export says of itself.
fn print_export(m: &ExportManifest) {
    println!(
        "database export of generation {} ({}), current as of {}, exported {}",
        m.generation,
        m.exported_by,
        rfc3339(m.fresh_at),
        rfc3339(m.exported_at)
    );
}

/// `db export FILE`.
pub fn export(settings: &Settings, file: &Path, format: Format) -> anyhow::Result<()> {
    let db = VulnDb::in_data_dir(&settings.data);
    let manifest = db.export(file)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&manifest)?),
        Format::Text => {
            for s in &manifest.sources {
                println!("  {:<28} {:>8} records  {}  {}", s.name, s.records, s.size, s.sha256);
            }
            println!(
                "wrote {}: generation {}, {} sources, current as of {}",
                file.display(),
                manifest.generation,
                manifest.sources.len(),
                rfc3339(manifest.fresh_at)
            );
        }
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
        (Format::Json, status) => println!("{}", serde_json::to_string(&with_updates(&db, settings, status)?)?),
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
    if matches!(format, Format::Text) {
        print_updates(&db, settings)?;
        print_pull(&db)?;
    }
    Ok(())
}

/// The last `db pull` or scheduled pull, under `db status`.
fn print_pull(db: &VulnDb) -> anyhow::Result<()> {
    let Some(p) = db.pull_view(unix_now())? else {
        return Ok(());
    };
    println!("pulled from {}", p.reference.as_deref().unwrap_or("?"));
    if let Some(digest) = &p.digest {
        let in_force = if p.in_force { "in force" } else { "no longer in force" };
        println!(
            "    {digest} ({in_force}), signed by key {}",
            p.key_id.as_deref().unwrap_or("?")
        );
    }
    let age = p.age_seconds.map_or("never".to_string(), |s| {
        format!("{} ago", portcullis_policy::age_text(std::time::Duration::from_secs(s)))
    });
    println!("    last success {age}");
    if let Some(e) = &p.last_error {
        println!("    last error {}: {e}", p.last_error_at.as_deref().unwrap_or("?"));
    }
    Ok(())
}

/// `db status --format json`: the status, with an `updates` member (each
/// source's records, last success and error, ages) when sources are set,
/// and a `pull` member (the last pull's artifact, success and error) once
/// the database was pulled.
fn with_updates(
    db: &VulnDb,
    settings: &Settings,
    status: Option<portcullis_vulndb::Status>,
) -> anyhow::Result<serde_json::Value> {
    let mut out = serde_json::to_value(&status)?;
    if let Some(pull) = db.pull_view(unix_now())? {
        add_member(&mut out, "pull", serde_json::to_value(pull)?);
    }
    let (urls, from) = db.effective_sources(&settings.vulndb_sources)?;
    if urls.is_empty() {
        return Ok(out);
    }
    let now = unix_now();
    let fresh = db.fresh_at()?;
    let state = db.update_state()?;
    let updates = serde_json::json!({
        "sources": db.source_views(&urls, now)?,
        "from": from,
        "last_run": state.last_run.map(rfc3339),
        "updated_at": state.updated_at.map(rfc3339),
        "fresh_at": fresh.map(rfc3339),
        "database_age_seconds": fresh.map(|t| now.saturating_sub(t)),
    });
    add_member(&mut out, "updates", updates);
    Ok(out)
}

/// `out` with `name` set to `value` (`out` is the status, or null before any import).
fn add_member(out: &mut serde_json::Value, name: &str, value: serde_json::Value) {
    match out {
        serde_json::Value::Object(map) => {
            map.insert(name.into(), value);
        }
        _ => *out = serde_json::json!({ name: value }),
    }
}

/// The update sources and the database's age, under `db status`.
fn print_updates(db: &VulnDb, settings: &Settings) -> anyhow::Result<()> {
    let now = unix_now();
    if let Some(fresh) = db.fresh_at()? {
        let age = std::time::Duration::from_secs(now.saturating_sub(fresh));
        println!(
            "current as of {} ({} ago)",
            rfc3339(fresh),
            portcullis_policy::age_text(age)
        );
    }
    let (urls, from) = db.effective_sources(&settings.vulndb_sources)?;
    if urls.is_empty() {
        return Ok(());
    }
    let from = match from {
        portcullis_vulndb::SourcesFrom::Api => "set through the API",
        portcullis_vulndb::SourcesFrom::Configuration => "vulndb_sources",
    };
    println!("updated from ({from}):");
    for v in db.source_views(&urls, now)? {
        let age = v.age_seconds.map_or("never".to_string(), |s| {
            format!("{} ago", portcullis_policy::age_text(std::time::Duration::from_secs(s)))
        });
        let records = v.records.map_or("-".to_string(), |n| n.to_string());
        println!("  {}", v.url);
        println!(
            "    {records} records, last success {age}{}",
            if v.plain_http {
                " (plain http: unauthenticated)"
            } else {
                ""
            }
        );
        if let Some(e) = &v.last_error {
            println!("    last error {}: {e}", v.last_error_at.as_deref().unwrap_or("?"));
        }
    }
    Ok(())
}

/// `db update`: once, with a progress bar; `false` when a source failed.
pub async fn update(settings: &Settings, format: Format) -> anyhow::Result<bool> {
    let db = VulnDb::in_data_dir(&settings.data);
    let (urls, _) = db.effective_sources(&settings.vulndb_sources)?;
    anyhow::ensure!(
        !urls.is_empty(),
        "no sources to update from: set vulndb_sources (configuration, PORTCULLIS_VULNDB_SOURCES) \
         or PUT /api/v1/vulndb/sources"
    );
    let report = db
        .update(&urls, &settings.vulndb_update_options(), Arc::new(Bar(bar())))
        .await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Text => print_update(&report),
    }
    Ok(report.failed() == 0)
}

fn print_update(report: &UpdateReport) {
    for s in &report.sources {
        let resumed = s
            .resumed_from
            .map(|n| format!(", resumed at byte {n}"))
            .unwrap_or_default();
        match (s.result, &s.error) {
            (Outcome::Unchanged, _) => println!("{}: not modified", s.url),
            (Outcome::Imported, _) => println!("{}: {} bytes downloaded{resumed}, imported", s.url, s.downloaded),
            (Outcome::Failed, e) => println!("{}: FAILED: {}", s.url, e.as_deref().unwrap_or("")),
        }
    }
    for name in &report.removed {
        println!("{name}: no longer a source, its records removed");
    }
    match &report.import {
        Some(import) => print_report(import),
        None if !report.removed.is_empty() => {}
        None => println!("nothing new: the database in force is unchanged"),
    }
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// docker://HOST/REPO[:TAG] or HOST/REPO[:TAG]: where the artifact goes.
    reference: String,
    /// Sign it with this cosign key file (password from COSIGN_PASSWORD or
    /// a prompt) or PKCS#8 PEM private key, as `portcullis sign` does.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Which of cosign's two forms to sign in.
    #[arg(long, value_enum, default_value = "tag", requires = "key")]
    form: Form,
    /// Push this file `db export` wrote instead of exporting the database in force.
    #[arg(long, value_name = "EXPORT")]
    file: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(serde::Serialize)]
struct Pushed {
    reference: String,
    digest: String,
    layer: String,
    size: u64,
    generation: u64,
    sources: usize,
    fresh_at: String,
    signature: Option<signature::Signed>,
}

/// Removes the export `db push` wrote for itself, however the push ends.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `db push REF [--key K]`: the export as an OCI image manifest of
/// artifact type `application/vnd.portcullis.vulndb.v1` whose one layer
/// is the export, then (with --key) a cosign signature on its digest.
pub async fn push(settings: &Settings, args: PushArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    use portcullis_registry_client::{ImageRef, RegistryClient};
    let image: ImageRef = args.reference.parse()?;
    anyhow::ensure!(
        image.digest().is_none(),
        "{}: push to a tag (the artifact's digest is known only once it is written)",
        args.reference
    );
    // The key first: a wrong password stops the push before any upload.
    let key = args.key.as_deref().map(signature::signing_key).transpose()?;
    let db = VulnDb::in_data_dir(&settings.data);
    let mut scratch = Scratch(None);
    let (file, manifest) = match &args.file {
        Some(file) => (
            file.clone(),
            portcullis_vulndb::read_export_manifest(file, &limits(settings))?,
        ),
        None => {
            std::fs::create_dir_all(db.dir()).with_context(|| format!("{}", db.dir().display()))?;
            let file = db.dir().join(format!("push-{}.tar.zst", std::process::id()));
            scratch.0 = Some(file.clone());
            let manifest = db.export(&file)?;
            (file, manifest)
        }
    };
    let client = RegistryClient::for_image(&image, &args.registry.access(&image.host)?)?;
    let config = client.push_blob(b"{}").await?;
    let (layer, size) = client.push_blob_file(&file).await?;
    drop(scratch);
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": portcullis_oci::media_type::OCI_MANIFEST,
        "artifactType": portcullis_vulndb::ARTIFACT_TYPE,
        "config": {"mediaType": portcullis_oci::media_type::EMPTY, "digest": config.as_str(), "size": 2},
        "layers": [{
            "mediaType": portcullis_vulndb::LAYER_MEDIA_TYPE,
            "digest": layer.as_str(),
            "size": size,
            "annotations": {"org.opencontainers.image.title": "vulndb.tar.zst"},
        }],
        "annotations": {
            "org.opencontainers.image.created": rfc3339(manifest.exported_at),
            "io.portcullis.vulndb.generation": manifest.generation.to_string(),
            "io.portcullis.vulndb.fresh_at": rfc3339(manifest.fresh_at),
            "io.portcullis.vulndb.sources": manifest.sources.len().to_string(),
        },
    });
    let bytes = serde_json::to_vec(&body)?;
    let digest = client
        .put_manifest(&image.reference, portcullis_oci::media_type::OCI_MANIFEST, &bytes)
        .await?;
    // Signed by digest: exactly what was pushed, whatever the tag does next.
    let signature = match &key {
        Some(key) => {
            let pushed = ImageRef {
                reference: digest.to_string(),
                ..image.clone()
            };
            Some(signature::sign_image(&client, &pushed, key, args.form).await?)
        }
        None => None,
    };
    let out = Pushed {
        reference: image.to_string(),
        digest: digest.to_string(),
        layer: layer.to_string(),
        size,
        generation: manifest.generation,
        sources: manifest.sources.len(),
        fresh_at: rfc3339(manifest.fresh_at),
        signature,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&out)?),
        Format::Text => {
            println!(
                "pushed {}@{}: generation {}, {} sources, {} bytes, current as of {}",
                image, out.digest, out.generation, out.sources, out.size, out.fresh_at
            );
            match &out.signature {
                Some(s) => println!("signed with key {} ({})", s.key_id, s.signature),
                None => println!("NOT signed: a registry pulling it with `db pull --key` refuses it until it is"),
            }
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    reference: String,
    /// A PEM public key (`cosign.pub`). Repeatable: any of them may have signed.
    #[arg(long, value_name = "FILE", required = true)]
    key: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// `db pull REF --key K…`; a refusal is a `VulnDbError::PullRefused`.
pub async fn pull(settings: &Settings, args: PullArgs) -> anyhow::Result<()> {
    let options = portcullis_vulndb::PullOptions {
        access: match args.reference.parse::<portcullis_registry_client::ImageRef>() {
            Ok(image) => args.registry.access(&image.host)?,
            // The pull says what is wrong with the reference.
            Err(_) => args.registry.access("")?,
        },
        keys: signature::public_keys(&args.key)?,
        limits: limits(settings),
    };
    let db = VulnDb::in_data_dir(&settings.data);
    let report = db.pull(&args.reference, &options, Arc::new(Bar(bar()))).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Text => {
            println!(
                "{}@{}: signed by key {} ({} form)",
                args.reference, report.digest, report.key_id, report.form
            );
            match (&report.import, &report.export) {
                (Some(import), Some(export)) => {
                    print_export(export);
                    print_report(import);
                }
                _ => println!("unchanged: the database in force is this artifact's already"),
            }
        }
    }
    Ok(())
}
