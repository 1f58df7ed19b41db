//! `portcullis attest` and `portcullis verify-attestation`: in-toto
//! attestations (SLSA provenance, SBOMs, scan results, …) in cosign's
//! formats on images in any registry. Exit codes as `sign`/`verify`: 0
//! attested / verified, 1 refused, 2 an error. Statements, predicate types
//! and provenance rules are `portcullis-sign`'s; the registry work is
//! `registry-client`'s.

use std::path::PathBuf;

use anyhow::Context;
use portcullis_registry_client::{ImageRef, RegistryClient};
use portcullis_sign::attestation::{build_statement, predicate, predicate_type, provenance, ProvenanceRule};
use serde::Serialize;

use crate::signature::{now_rfc3339, signing_key, Form, OutputFormat, RegistryArgs, SigningArgs, TrustArgs};

#[derive(clap::Args)]
pub struct AttestArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    image: String,
    /// The predicate: a JSON file (the text itself for `custom` and `spdx`).
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// cosign's predicate type names (slsaprovenance, slsaprovenance02,
    /// slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex,
    /// custom) or a predicate type URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    kind: String,
    #[command(flatten)]
    with: SigningArgs,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("trust").required(true).args(["key", "team"]))]
pub struct VerifyAttestationArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    image: String,
    /// The predicate type asked for: one of cosign's names or a URI.
    #[arg(long = "type", value_name = "TYPE")]
    kind: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// SLSA provenance only: the builder id (v1 `runDetails.builder.id`,
    /// v0.2 `builder.id`) must match one of these globs. Repeatable.
    #[arg(long, value_name = "GLOB")]
    builder_id: Vec<String>,
    /// SLSA provenance only: a source URI (v1 `externalParameters`
    /// `workflow.repository`/`source`/`repository`/`configSource.uri` or
    /// `resolvedDependencies[].uri`; v0.2 `invocation.configSource.uri`)
    /// must match one of these globs. Repeatable.
    #[arg(long, value_name = "GLOB")]
    source_uri: Vec<String>,
    #[command(flatten)]
    access: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

#[derive(Serialize)]
struct Attested {
    image: String,
    digest: String,
    predicate_type: String,
    key_id: String,
    form: Form,
    /// Where the attestation is: the `.att` tag, or the referrer's digest.
    attestation: String,
}

pub async fn attest(args: AttestArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.image.parse()?;
    let uri = predicate_type(&args.kind)?.to_string();
    let raw = std::fs::read(&args.predicate).with_context(|| format!("reading {}", args.predicate.display()))?;
    let created = now_rfc3339()?;
    let body = predicate(&args.kind, &raw, &created).with_context(|| format!("{}", args.predicate.display()))?;
    let with = &args.with;
    let key = signing_key(&with.key)?;
    let client = RegistryClient::for_image(&image, &with.registry.access(&image.host)?)?;
    let name = format!("{}/{}", image.host, image.repository);
    let statement = |digest: &portcullis_oci::Digest| build_statement(&name, digest, &uri, body);
    let done = client
        .attest(&image.reference, &uri, statement, &key, with.form.into(), &created)
        .await?;
    if image.digest().is_none() {
        // As cosign warns: a tag can move between the push and this.
        eprintln!(
            "warning: {} is a tag; attested {} as it was when read. Attest by digest ({}/{}@{}) so that a moved tag can't take the attestation",
            image.reference, done.digest, image.host, image.repository, done.digest
        );
    }
    let out = Attested {
        image: image.to_string(),
        digest: done.digest.to_string(),
        predicate_type: uri,
        key_id: key.public.id.clone(),
        form: with.form,
        attestation: done.signature,
    };
    match with.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
        OutputFormat::Text => println!(
            "attested {}/{}@{} ({}) with key {} ({})",
            image.host, image.repository, out.digest, out.predicate_type, out.key_id, out.attestation
        ),
    }
    Ok(())
}

#[derive(Serialize)]
struct AttestationReport {
    image: String,
    digest: String,
    predicate_type: String,
    verified: bool,
    attestations: Vec<Verified>,
    trusted_keys: usize,
    reason: Option<String>,
}

#[derive(Serialize)]
struct Verified {
    key_id: String,
    account: Option<String>,
    form: Form,
    /// SLSA provenance's builder id, the build's source (what
    /// `--source-uri` judges) and what else it consumed, when it is that.
    builder_id: Option<String>,
    source_uri: Option<String>,
    dependencies: Vec<String>,
    statement: serde_json::Value,
}

/// Verifies; `Ok(false)` when no attestation of the type passes.
pub async fn verify(args: VerifyAttestationArgs) -> anyhow::Result<bool> {
    let image: ImageRef = args.image.parse()?;
    let uri = predicate_type(&args.kind)?.to_string();
    let rule = ProvenanceRule::new(&args.builder_id, &args.source_uri)?;
    let access = args.access.access(&image.host)?;
    let trusted = args.trust.keys(&image, &access).await?;
    let keys: Vec<_> = trusted.iter().map(|t| t.key.clone()).collect();
    let client = RegistryClient::for_image(&image, &access)?;
    let m = client.manifest(&image.reference).await?;
    let verdict = client.verify_attestations(&m.digest, &keys, &uri, &rule).await?;
    let attestations: Vec<Verified> = verdict
        .verified
        .iter()
        .map(|v| {
            let p = provenance(&uri, &v.statement["predicate"]).unwrap_or_default();
            Verified {
                key_id: v.key_id.clone(),
                account: trusted
                    .iter()
                    .find(|t| t.key.id == v.key_id)
                    .and_then(|t| t.account.clone()),
                form: v.form.into(),
                builder_id: p.builder_id,
                source_uri: p.source_uri,
                dependencies: p.dependencies,
                statement: v.statement.clone(),
            }
        })
        .collect();
    let verified = verdict.is_verified();
    let reason = match keys.is_empty() {
        true => Some("no trusted key: the team's members have no current keys".to_string()),
        false => verdict.refusal(&uri, keys.len()),
    };
    let out = AttestationReport {
        image: image.to_string(),
        digest: m.digest.to_string(),
        predicate_type: uri,
        verified,
        attestations,
        trusted_keys: keys.len(),
        reason,
    };
    let name = format!("{}/{}@{}", image.host, image.repository, out.digest);
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
        OutputFormat::Text if verified => {
            for a in &out.attestations {
                let by = a.account.as_deref().map(|a| format!(" ({a})")).unwrap_or_default();
                let builder = a
                    .builder_id
                    .as_deref()
                    .map(|b| format!(", builder {b}"))
                    .unwrap_or_default();
                let form = if a.form == Form::Tag { "tag" } else { "bundle" };
                println!(
                    "verified {name}: {} attested by key {}{by}, {form} form{builder}",
                    out.predicate_type, a.key_id
                );
            }
        }
        OutputFormat::Text => println!("NOT verified {name}: {}", out.reason.as_deref().unwrap_or("")),
    }
    Ok(verified)
}
