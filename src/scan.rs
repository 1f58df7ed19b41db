//! `portcullis scan TARGET`: an image's components and vulnerabilities,
//! from the database `db import` left in the data directory.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use futures_util::{StreamExt, TryStreamExt};
use portcullis_oci::Platform;
use portcullis_scan::layer::links::LinkResolver;
use portcullis_scan::layer::{merge, Component, ImageFacts, LayerFacts};
use portcullis_scan::matching::{match_image, Finding};
use portcullis_scan::os_release::OsRelease;
use portcullis_scan::sbom;
use portcullis_scan::severity::Severity;
use portcullis_scan::summary::{layer_view, severity_counts, LayerSummary};
use portcullis_vulndb::{rfc3339, VulnDb};
use serde::Serialize;

use crate::settings::Settings;
use crate::target::{self, Access, Target};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ScanFormat {
    /// Findings grouped by severity, worst first.
    Table,
    /// Everything: image, layers, components, findings, warnings.
    Json,
    /// SPDX 2.3 JSON, with advisories as security references.
    Spdx,
    /// CycloneDX 1.5 JSON, with its vulnerabilities section.
    Cyclonedx,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// oci:DIR[:TAG] (or a bare DIR), oci-archive:FILE[:TAG],
    /// docker-archive:FILE, docker://HOST/REPO[:TAG|@DIGEST].
    target: String,
    #[arg(long, value_enum, default_value = "table")]
    format: ScanFormat,
    /// Exit with status 1 when a finding is this severe or worse
    /// (critical, high, medium, low, unknown).
    #[arg(long, value_name = "SEVERITY")]
    fail_on: Option<Severity>,
    /// Credentials for docker:// targets: USER:PASSWORD or USER:TOKEN.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "PORTCULLIS_SCAN_CREDS",
        hide_env_values = true
    )]
    creds: Option<String>,
    /// `false` talks plain HTTP to the registry.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// The image of a multi-arch index to scan [default: linux/amd64].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<Platform>,
}

#[derive(Serialize)]
struct Database {
    generation: u64,
    imported_at: String,
    records: u64,
}

#[derive(Serialize)]
struct ScanReport {
    target: String,
    manifest_digest: Option<String>,
    platform: Option<String>,
    os: Option<OsRelease>,
    database: Option<Database>,
    summary: BTreeMap<&'static str, usize>,
    layers: Vec<LayerSummary>,
    components: Vec<Component>,
    vulnerabilities: Vec<Finding>,
    warnings: Vec<String>,
}

/// Scans and prints; `Ok(false)` when `--fail-on` is met.
pub async fn run(settings: &Settings, args: ScanArgs) -> anyhow::Result<bool> {
    let target: Target = args.target.parse()?;
    // `--creds`, else the login kept for the registry (as skopeo reads it).
    let creds = match (&args.creds, &target) {
        (Some(c), _) => Some(c.clone()),
        (None, Target::Registry { host, .. }) => crate::remote::credentials::kept_creds(host)?,
        (None, _) => None,
    };
    let access = Access {
        registry: portcullis_registry_client::Access {
            creds,
            tls_verify: args.tls_verify,
            ..Default::default()
        },
        platform: args.platform.clone(),
    };
    let db = VulnDb::in_data_dir(&settings.data);
    // Loading the database overlaps with reading the layers.
    let index = tokio::task::spawn_blocking(move || -> anyhow::Result<_> { Ok(db.open()?) });
    let image = target::resolve(&target, &access)
        .await
        .with_context(|| format!("resolving {}", args.target))?;
    let limits = settings.scan_limits();
    let workers = settings.scan_layer_workers();
    let threads = portcullis_scan::layer::Threads::for_layer_workers(workers);
    // `buffered` yields in layer order whatever order the reads finish in:
    // the merge sees the overlay as it is.
    let mut facts: Vec<LayerFacts> = futures_util::stream::iter(&image.layers)
        .map(|layer| layer.facts(limits, threads))
        .buffered(workers)
        .try_collect()
        .await?;
    // Package databases that are links: their targets, read where they are.
    let refs: Vec<&LayerFacts> = facts.iter().collect();
    let mut links = LinkResolver::new(&refs);
    while let Some((look, wanted)) = links.next_read() {
        let found = image.layers[look].files(limits, wanted).await?;
        links.found(look, &facts[look], &found);
    }
    links.finish(&mut facts, &limits);
    let merged = merge(image.layers.iter().map(|l| l.digest.as_str()).zip(&facts));
    let (database, findings) = match index.await?? {
        Some((status, index)) => (
            Some(Database {
                generation: status.generation,
                imported_at: rfc3339(status.imported_at),
                records: status.records(),
            }),
            match_image(&merged, &index)?,
        ),
        None if args.fail_on.is_some() => bail!(
            "--fail-on needs a vulnerability database, and {} has none: run `portcullis db import`",
            settings.data.display()
        ),
        None => (None, Vec::new()),
    };
    let summary: BTreeMap<&'static str, usize> = Severity::ALL
        .iter()
        .map(|s| s.name())
        .zip(severity_counts(&findings))
        .collect();
    let digests: Vec<String> = image.layers.iter().map(|l| l.digest.clone()).collect();
    let layers = layer_view(&digests, &merged, &findings);
    let failed = args
        .fail_on
        .is_some_and(|bar| findings.iter().any(|f| f.severity >= bar));
    let report = ScanReport {
        target: image.name,
        manifest_digest: image.manifest_digest,
        platform: image.platform,
        os: merged.os,
        database,
        summary,
        layers,
        components: merged.components,
        vulnerabilities: findings,
        warnings: merged.warnings,
    };
    match args.format {
        ScanFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        ScanFormat::Table => print_table(&report, &settings.data),
        ScanFormat::Spdx | ScanFormat::Cyclonedx | ScanFormat::Sarif => {
            let created = rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
            let serial = uuid::Uuid::new_v4().to_string();
            let subject = sbom::Subject {
                name: &report.target,
                manifest_digest: report.manifest_digest.as_deref(),
                created: &created,
                serial: &serial,
                tool_version: env!("CARGO_PKG_VERSION"),
            };
            let image = ImageFacts {
                os: report.os,
                components: report.components,
                warnings: report.warnings,
            };
            let doc = match args.format {
                ScanFormat::Spdx => sbom::Format::Spdx.document(&subject, &image, &report.vulnerabilities),
                ScanFormat::Sarif => portcullis_scan::sarif::sarif(&subject, &report.vulnerabilities),
                _ => sbom::Format::CycloneDx.document(&subject, &image, &report.vulnerabilities),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    if failed {
        eprintln!(
            "failing: findings at or above {}",
            args.fail_on.map(Severity::name).unwrap_or_default()
        );
    }
    Ok(!failed)
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

fn print_table(r: &ScanReport, data: &std::path::Path) {
    println!(
        "{}{}{}",
        r.target,
        r.manifest_digest
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default(),
        r.platform.as_deref().map(|p| format!(" [{p}]")).unwrap_or_default()
    );
    let os = r.os.as_ref().map_or("unknown".to_string(), |o| {
        o.pretty_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", o.id, o.version_id.as_deref().unwrap_or("")))
    });
    println!(
        "OS: {os}; {} components in {} layers",
        r.components.len(),
        r.layers.len()
    );
    match &r.database {
        Some(d) => println!(
            "vulnerability database: generation {}, {} records, imported {}",
            d.generation, d.records, d.imported_at
        ),
        None => println!(
            "no vulnerability database in {}: components only (run `portcullis db import`)",
            data.display()
        ),
    }
    for severity in Severity::ALL {
        let group: Vec<&Finding> = r.vulnerabilities.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        println!("\n{} ({})", severity.name().to_uppercase(), group.len());
        println!(
            "  {:<36} {:<28} {:<24} {:<24} {:<14} LAYER",
            "VULNERABILITY", "PACKAGE", "INSTALLED", "FIXED IN", "RATED BY"
        );
        for f in group {
            let mut ids = f.ids.join(", ");
            if !f.related.is_empty() {
                ids.push_str(&format!(" ({})", f.related.join(", ")));
            }
            let fixed = match (&f.fixed_version, &f.distro_status) {
                (Some(v), _) => v.clone(),
                (None, Some(status)) => format!("(no fix: {status})"),
                (None, None) => "(no fix)".into(),
            };
            println!(
                "  {:<36} {:<28} {:<24} {:<24} {:<14} {}",
                ids,
                f.package,
                f.version,
                fixed,
                f.severity_source.as_deref().unwrap_or("-"),
                short(&f.layer)
            );
        }
    }
    let counts: Vec<String> = Severity::ALL
        .iter()
        .map(|s| format!("{} {}", r.summary[s.name()], s.name()))
        .collect();
    println!("\n{} vulnerabilities: {}", r.vulnerabilities.len(), counts.join(", "));
    for w in &r.warnings {
        println!("warning: {w}");
    }
}
