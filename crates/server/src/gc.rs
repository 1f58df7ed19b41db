//! Garbage collection over `meta` and `store`, safe while pushes run.
//!
//! Order matters: untagged manifests first (which frees their blob links),
//! then links nothing references, then blobs no repository links, then
//! leftovers on disk. Every step only removes what is older than its grace
//! period, and `meta` re-checks each condition as it deletes.

use std::time::{Duration, SystemTime};

use portcullis_meta::{now_ms, Meta};
use portcullis_store::BlobStore;
use serde::Serialize;

use crate::RegistryError;

#[derive(Debug, Clone)]
pub struct GcSettings {
    /// How long an untagged manifest is kept (a push by digest, then a tag).
    pub manifest_grace: Duration,
    /// How long an unreferenced blob is kept (layers pushed before their manifest).
    pub blob_grace: Duration,
    /// How long an upload session may sit idle.
    pub upload_expiry: Duration,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            manifest_grace: Duration::from_secs(24 * 3600),
            blob_grace: Duration::from_secs(3600),
            upload_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct GcReport {
    pub manifests: u64,
    pub links: u64,
    pub blobs: u64,
    pub orphan_files: u64,
    pub uploads: u64,
    /// Scan results (with their findings) of images no repository holds.
    pub scans: u64,
    pub sboms: u64,
    /// Cached facts of layers no manifest lists.
    pub layer_facts: u64,
}

impl GcReport {
    pub fn total(&self) -> u64 {
        self.manifests
            + self.links
            + self.blobs
            + self.orphan_files
            + self.uploads
            + self.scans
            + self.sboms
            + self.layer_facts
    }
}

const BATCH: i64 = 500;

/// Files without a row are only ever left by a crash, so they can wait; but
/// a file published a moment ago by a transaction that has not committed
/// yet also has no row. This floor keeps the sweep off those whatever the
/// configured grace periods (a test with grace 0 caught exactly that race).
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

fn cutoff(grace: Duration) -> i64 {
    now_ms() - grace.as_millis() as i64
}

pub async fn collect_garbage(reg: &crate::Registry, s: &GcSettings) -> Result<GcReport, RegistryError> {
    let (meta, store): (&Meta, &BlobStore) = (&reg.meta, &reg.store);
    let mut report = GcReport::default();

    // An index's children become collectable once the index is gone: repeat
    // until a pass removes nothing.
    loop {
        let c = cutoff(s.manifest_grace);
        let mut removed = 0;
        for (repo, digest) in meta.untagged_manifests(c, BATCH).await? {
            let about = crate::webhooks::About {
                repository: &repo,
                digest: Some(&digest),
                tag: None,
                media_type: None,
            };
            let why = serde_json::json!({"reason": "garbage collection"});
            let outbox = vec![reg.event("MANIFEST_DELETE", None, about, why)];
            if meta.collect_manifest(&repo, &digest, c, outbox).await? {
                reg.manifests.invalidate(&repo);
                reg.dispatcher.wake.notify_one();
                removed += 1;
            }
        }
        report.manifests += removed;
        if removed == 0 {
            break;
        }
    }

    let c = cutoff(s.blob_grace);
    loop {
        let removed = meta.collect_links(c, BATCH).await?;
        report.links += removed;
        if removed < BATCH as u64 {
            break;
        }
    }

    loop {
        let removed = meta
            .collect_blobs(c, BATCH, |digest| async move {
                match digest.parse() {
                    Ok(d) => store.remove_blob(&d).await,
                    Err(_) => Ok(()),
                }
            })
            .await?;
        report.blobs += removed;
        if removed < BATCH as u64 {
            break;
        }
    }

    // What only the removed manifests and blobs needed.
    loop {
        let (scans, sboms, facts) = meta
            .prune_scan_data(cutoff(s.manifest_grace.min(s.blob_grace)), BATCH)
            .await?;
        report.scans += scans;
        report.sboms += sboms;
        report.layer_facts += facts;
        if scans.max(sboms).max(facts) < BATCH as u64 {
            break;
        }
    }

    // Files no row names: a crash between a rename and its commit, or a
    // collection that crashed after its commit. Only old ones: a fresh file
    // may belong to a transaction not yet committed. Each is removed under
    // the blob's row lock, so a push of the same bytes that renewed an old
    // file's mtime and has not committed yet keeps it.
    let old = SystemTime::now() - s.blob_grace.max(ORPHAN_MIN_AGE);
    let files = tokio::task::block_in_place(|| store.list_blobs())?;
    for (digest, modified) in files {
        if modified < old
            && !meta.blob_known(digest.as_str()).await?
            && meta
                .collect_orphan_file(digest.as_str(), || store.remove_blob(&digest))
                .await?
        {
            report.orphan_files += 1;
        }
    }

    for id in meta.stale_uploads(cutoff(s.upload_expiry)).await? {
        if let Ok(uuid) = id.parse() {
            let _ = store.cancel_upload(uuid).await;
        }
        meta.delete_upload(&id).await?;
        report.uploads += 1;
    }
    // Monolithic uploads have no row while their body streams in.
    let stale = SystemTime::now() - s.upload_expiry.max(ORPHAN_MIN_AGE);
    let uploads = tokio::task::block_in_place(|| store.list_uploads())?;
    for (id, modified) in uploads {
        if modified < stale && !meta.upload_known(&id.to_string()).await? {
            let _ = store.cancel_upload(id).await;
            report.uploads += 1;
        }
    }
    Ok(report)
}

/// One collection with its outcome logged and counted; for the background loop.
/// Records a finished collection in the audit trail (`gc.run` by the
/// system), so operators see every run and what it removed.
pub async fn audit_gc_run(
    reg: &crate::Registry,
    result: &Result<GcReport, RegistryError>,
    started: std::time::Instant,
) {
    let mut ev = portcullis_meta::AuditEvent::ok("system", "gc.run");
    let ms = started.elapsed().as_millis();
    ev.detail = Some(match result {
        Ok(r) => format!(
            "{ms} ms: {} manifests, {} links, {} blobs, {} orphan files, {} uploads, {} scans, {} layer facts removed",
            r.manifests, r.links, r.blobs, r.orphan_files, r.uploads, r.scans, r.layer_facts
        ),
        Err(e) => {
            ev.result = "failed".into();
            format!("{ms} ms: {e}")
        }
    });
    if let Err(e) = reg.meta.audit(&[ev]).await {
        tracing::warn!(error = %e, "recording the garbage collection");
    }
}

pub async fn collect_garbage_logged(reg: &crate::Registry, s: &GcSettings) {
    let started = std::time::Instant::now();
    let result = collect_garbage(reg, s).await;
    audit_gc_run(reg, &result, started).await;
    match result {
        Ok(r) => {
            reg.metrics.gc_finished(r.total());
            tracing::info!(
                manifests = r.manifests,
                links = r.links,
                blobs = r.blobs,
                orphans = r.orphan_files,
                uploads = r.uploads,
                scans = r.scans,
                layer_facts = r.layer_facts,
                "garbage collection done"
            );
        }
        Err(e) => tracing::error!(error = %e, "garbage collection failed"),
    }
}
