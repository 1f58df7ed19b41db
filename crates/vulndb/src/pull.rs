//! The database carried into a disconnected registry as a signed OCI
//! artifact (issue 20 §4, air-gapped transfer): `db push` puts an export
//! (`export.rs`) in a registry as an OCI image manifest of `artifactType`
//! [`ARTIFACT_TYPE`] with the export as its one layer, and `db pull` (or
//! `serve` on its schedule) takes it back: the manifest, then a cosign
//! signature on its digest by one of the configured keys (either form,
//! verified, never merely present), then the layer, checked against its
//! digest and size, then one import of the export. An unsigned copy, one
//! signed by none of the keys, or one whose bytes are not what the signed
//! manifest names is refused, and the database in force stays.
//!
//! What the puller remembers (the manifest imported, when it last
//! succeeded and why it last failed) is in `<vulndb>/pull.json`, for
//! status and so an unchanged artifact is not imported again.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_oci::{media_type, Digest};
use portcullis_registry_client::{Access, ClientError, ImageRef, RegistryClient};
use portcullis_sign::PublicKey;
use serde::{Deserialize, Serialize};

use crate::export::{ARTIFACT_TYPE, LAYER_MEDIA_TYPE};
use crate::sources::unix_now;
use crate::{io_err, rfc3339, ExportManifest, ImportReport, Limits, Progress, VulnDb, VulnDbError};

const STATE: &str = "pull.json";

/// How a pull reaches its registry and whom it trusts.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub access: Access,
    /// A copy must be signed by one of these (cosign's public keys).
    pub keys: Vec<PublicKey>,
    /// Bounds the layer's size and the import, as for `db import`.
    pub limits: Limits,
}

/// What one pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub reference: String,
    /// The artifact's manifest.
    pub digest: String,
    /// `imported`, or `unchanged` (the manifest in force already).
    pub result: PullOutcome,
    /// The key that verified, and in which form.
    pub key_id: String,
    pub form: &'static str,
    /// The import, when there was one.
    pub import: Option<ImportReport>,
    /// What the export said of itself (exporter's generation, freshness).
    pub export: Option<ExportManifest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullOutcome {
    Imported,
    Unchanged,
}

/// What the puller remembers, in `pull.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullState {
    /// The reference last pulled from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The manifest last imported, the generation it became and the key that verified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
}

/// The pull as `db status` and `GET /api/v1/vulndb` show it; times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullView {
    pub reference: Option<String>,
    pub digest: Option<String>,
    pub key_id: Option<String>,
    /// Whether the generation in force is the one the last pull imported.
    pub in_force: bool,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_change: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Seconds since the last success.
    pub age_seconds: Option<u64>,
}

fn refused(reference: &str, why: impl Into<String>) -> VulnDbError {
    VulnDbError::PullRefused {
        reference: reference.to_string(),
        why: why.into(),
    }
}

/// `why` with its causes, which say what actually went wrong (a refused
/// connection, a certificate).
fn failed(reference: &str, why: impl std::error::Error) -> VulnDbError {
    let mut text = why.to_string();
    let mut cause = why.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    VulnDbError::Pull {
        reference: reference.to_string(),
        why: text,
    }
}

/// A layer longer or shorter than its manifest says.
#[derive(Debug)]
struct SizeMismatch(String);

impl std::fmt::Display for SizeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeMismatch {}

/// A client error, as a refusal when bytes were not what was asked for.
fn client_error(reference: &str, e: ClientError) -> VulnDbError {
    let wrong_size = match &e {
        ClientError::Read { source, .. } => source
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref())
            .is_some_and(|inner| inner.is::<SizeMismatch>()),
        _ => false,
    };
    match e {
        ClientError::DigestMismatch { .. } => refused(reference, format!("digest mismatch: {e}")),
        e if wrong_size => refused(reference, format!("size mismatch: {e}")),
        e => failed(reference, e),
    }
}

/// The layer of an artifact manifest that is a database export: its
/// digest and size. Anything else is refused.
fn export_layer(manifest: &[u8], limits: &Limits) -> Result<(Digest, u64), String> {
    let v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if v["mediaType"].as_str().is_some_and(|t| t != media_type::OCI_MANIFEST) {
        return Err(format!(
            "a {}, not an OCI image manifest of a vulnerability database",
            v["mediaType"]
        ));
    }
    let kind = v["artifactType"].as_str().or(v["config"]["mediaType"].as_str());
    if kind != Some(ARTIFACT_TYPE) {
        return Err(format!(
            "not a Portcullis vulnerability database (artifact type {}, not {ARTIFACT_TYPE})",
            kind.unwrap_or("none")
        ));
    }
    let layers = v["layers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let [layer] = layers else {
        return Err(format!("{} layers; a database artifact has one", layers.len()));
    };
    if layer["mediaType"] != LAYER_MEDIA_TYPE {
        return Err(format!("its layer is a {}, not {LAYER_MEDIA_TYPE}", layer["mediaType"]));
    }
    let digest: Digest = layer["digest"]
        .as_str()
        .unwrap_or("")
        .parse()
        .map_err(|e| format!("its layer's digest: {e}"))?;
    let size = layer["size"].as_u64().ok_or("its layer has no size")?;
    if size > limits.max_input_bytes {
        return Err(format!(
            "its layer is {size} bytes, over the input limit of {}",
            limits.max_input_bytes
        ));
    }
    Ok((digest, size))
}

impl VulnDb {
    fn pull_state_path(&self) -> PathBuf {
        self.dir().join(STATE)
    }

    /// What the puller remembers; empty before the first pull.
    pub fn pull_state(&self) -> Result<PullState, VulnDbError> {
        crate::read_state(&self.pull_state_path())
    }

    /// The pull as status shows it, at `now` (Unix seconds); `None` before
    /// the first pull.
    pub fn pull_view(&self, now: u64) -> Result<Option<PullView>, VulnDbError> {
        let state = self.pull_state()?;
        if state.last_attempt.is_none() {
            return Ok(None);
        }
        let current = self.status()?.map(|s| s.generation);
        let at = |t: Option<u64>| t.map(rfc3339);
        Ok(Some(PullView {
            reference: state.reference.clone(),
            digest: state.digest.clone(),
            key_id: state.key_id.clone(),
            in_force: state.generation.is_some() && state.generation == current,
            last_attempt: at(state.last_attempt),
            last_success: at(state.last_success),
            last_change: at(state.last_change),
            last_error: state.last_error.clone(),
            last_error_at: at(state.last_error_at),
            age_seconds: state.last_success.map(|t| now.saturating_sub(t)),
        }))
    }

    /// Pulls the database artifact `reference` names (see the module
    /// comment) and imports it unless it is the one in force already. The
    /// outcome, success or failure, is remembered for status.
    /// [`VulnDbError::PullRefused`] says the copy was refused (unsigned,
    /// signed by none of the keys, bytes not matching their digest, an
    /// export that does not check out); other errors, that it could not be
    /// tried (the registry unreachable, another pull running).
    pub async fn pull(
        &self,
        reference: &str,
        options: &PullOptions,
        progress: Arc<dyn Progress + Send + Sync>,
    ) -> Result<PullReport, VulnDbError> {
        fs::create_dir_all(self.dir()).map_err(io_err(self.dir()))?;
        let lock_path = self.dir().join("pull.lock");
        let lock = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(VulnDbError::PullBusy(self.dir().to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let started = unix_now();
        let mut state = self.pull_state()?;
        let result = self.pull_locked(reference, options, &state, progress).await;
        let now = unix_now();
        state.reference = Some(reference.to_string());
        state.last_attempt = Some(started);
        match &result {
            Ok(report) => {
                state.last_success = Some(now);
                state.last_error = None;
                state.last_error_at = None;
                state.digest = Some(report.digest.clone());
                state.key_id = Some(report.key_id.clone());
                if let Some(import) = &report.import {
                    state.generation = Some(import.generation);
                    state.last_change = Some(now);
                }
            }
            Err(e) => {
                state.last_error = Some(e.to_string());
                state.last_error_at = Some(now);
            }
        }
        crate::write_state(&self.pull_state_path(), &state)?;
        result
    }

    async fn pull_locked(
        &self,
        reference: &str,
        options: &PullOptions,
        state: &PullState,
        progress: Arc<dyn Progress + Send + Sync>,
    ) -> Result<PullReport, VulnDbError> {
        if options.keys.is_empty() {
            return Err(refused(reference, "no key to verify its signature with"));
        }
        let image: ImageRef = reference.parse().map_err(|e| failed(reference, e))?;
        let client = RegistryClient::for_image(&image, &options.access).map_err(|e| failed(reference, e))?;
        let manifest = client
            .manifest(&image.reference)
            .await
            .map_err(|e| client_error(reference, e))?;
        let digest = manifest.digest.clone();
        // The signature first: nothing unsigned is downloaded.
        let verdict = client
            .verify_signatures(&digest, &options.keys)
            .await
            .map_err(|e| client_error(reference, e))?;
        let Some((key_id, form)) = verdict.verified.first().cloned() else {
            let why = verdict.refusal(options.keys.len()).unwrap_or_default();
            return Err(refused(reference, format!("{digest}: {why}")));
        };
        let (layer, size) = export_layer(&manifest.bytes, &options.limits)
            .map_err(|why| refused(reference, format!("{digest}: {why}")))?;
        let in_force = self.status()?.map(|s| s.generation);
        if state.digest.as_deref() == Some(digest.as_str())
            && state.generation.is_some()
            && state.generation == in_force
        {
            return Ok(PullReport {
                reference: reference.to_string(),
                digest: digest.to_string(),
                result: PullOutcome::Unchanged,
                key_id,
                form: form.name(),
                import: None,
                export: None,
            });
        }
        let downloads = self.dir().join("downloads");
        fs::create_dir_all(&downloads).map_err(io_err(&downloads))?;
        let file = downloads.join("pull.partial");
        let downloaded = download(&client, &layer, size, &file, &progress).await;
        let imported = match downloaded {
            Ok(()) => {
                let (db, limits, path, bar) = (self.clone(), options.limits, file.clone(), progress.clone());
                let shown = format!("{}@{digest}", reference.split('@').next().unwrap_or(reference));
                tokio::task::spawn_blocking(move || db.import_export_from(&path, &shown, &limits, &*bar))
                    .await
                    .unwrap_or_else(|e| Err(failed(reference, e)))
            }
            Err(e) => Err(client_error(reference, e)),
        };
        let _ = fs::remove_file(&file);
        let (import, export) = imported.map_err(|e| match e {
            // The export inside the signed artifact does not check out.
            VulnDbError::Unreadable { why, .. } => refused(reference, format!("{digest}: the export: {why}")),
            e => e,
        })?;
        Ok(PullReport {
            reference: reference.to_string(),
            digest: digest.to_string(),
            result: PullOutcome::Imported,
            key_id,
            form: form.name(),
            import: Some(import),
            export: Some(export),
        })
    }
}

/// Streams the layer into `path`, refusing more bytes than the manifest
/// says (the client checks the digest of all of them).
async fn download(
    client: &RegistryClient,
    layer: &Digest,
    size: u64,
    path: &Path,
    progress: &Arc<dyn Progress + Send + Sync>,
) -> Result<(), ClientError> {
    let (path, bar) = (path.to_path_buf(), progress.clone());
    client
        .read_blob(layer.as_str(), move |r| -> io::Result<()> {
            bar.start("vulndb layer", size);
            let mut file = fs::File::create(&path)?;
            let mut buf = vec![0u8; 256 << 10];
            let mut have = 0u64;
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                have += n as u64;
                if have > size {
                    return Err(io::Error::other(SizeMismatch(format!(
                        "more than the {size} bytes its manifest says"
                    ))));
                }
                file.write_all(&buf[..n])?;
                bar.advance(n as u64);
            }
            bar.finish();
            if have != size {
                return Err(io::Error::other(SizeMismatch(format!(
                    "{have} bytes, its manifest says {size}"
                ))));
            }
            file.sync_all()
        })
        .await
}
