//! Scanning inside the registry: pushes queue image manifests in the
//! metadata database, a fixed number of workers scan them (so scanning
//! never takes more than its share of the machine from pushes and pulls),
//! and a new vulnerability database generation re-matches every stored
//! SBOM without reading a layer.
//!
//! The queue lives in the database, not in memory: a restart resumes it,
//! and replicas sharing PostgreSQL share it (a scan is claimed by one).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use portcullis_meta::{ScanOutcome, SeverityCounts};
use portcullis_oci::{media_type, Digest, Manifest};
use portcullis_scan::layer::links::resolve_links;
use portcullis_scan::layer::{
    merge, read_files, read_layer_with, ImageFacts, LayerFacts, Limits, Threads, FACTS_VERSION,
};
use portcullis_scan::matching::{match_image, match_image_with, Finding, MatchCache};
use portcullis_scan::summary::severity_counts;
use portcullis_vulndb::{DiskIndex, VulnDb};

use crate::Registry;

/// How the registry scans.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Concurrent scans; 0 turns scanning off.
    pub workers: usize,
    /// Layers of one image read at once, each by a pipeline of threads
    /// when more than one ([`Threads::for_layer_workers`]); 1 reads layer
    /// after layer on one thread. A read holds about two `limits.max_file_bytes` (a
    /// file, a Java archive's contents) and its decompressor's window:
    /// `workers × layer_workers` reads at most.
    pub layer_workers: usize,
    pub limits: Limits,
    /// The data directory, whose `vulndb` `db import` fills.
    pub data_dir: PathBuf,
    /// How often to look for a newly imported database.
    pub db_poll: Duration,
    /// Where `serve` updates the database from, and how often.
    pub updates: crate::UpdateSettings,
    /// Or where it pulls a signed database artifact from (`vulndb_pull`).
    pub pull: crate::PullSettings,
}

impl ScanSettings {
    /// One worker reading as many layers at once as there are cores, the
    /// scanner's default limits, a 5 s look for new databases.
    pub fn new(data_dir: &std::path::Path) -> ScanSettings {
        ScanSettings {
            workers: 1,
            layer_workers: available_cores(),
            limits: Limits::default(),
            data_dir: data_dir.to_path_buf(),
            db_poll: Duration::from_secs(5),
            updates: crate::UpdateSettings::default(),
            pull: crate::PullSettings::default(),
        }
    }
}

/// The cores this process may use (one when the system won't say): the
/// default number of layers read at once.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Config media types of images (as opposed to signatures, SBOMs and other
/// artifacts, whose layers are not file systems).
pub(crate) const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

pub(crate) struct Scanner {
    settings: ScanSettings,
    pub(crate) vulndb: VulnDb,
    index: RwLock<Option<(u64, Arc<DiskIndex>)>>,
    /// Holds a permit when work arrived while no worker was waiting.
    wake: Arc<tokio::sync::Notify>,
    /// One reader per layer digest at a time, so concurrent scans of images
    /// sharing a base read that layer once.
    reading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Layers read from blob storage (not from the facts cache) since start.
    layers_read: std::sync::atomic::AtomicU64,
    /// A finished scan's re-match against a newer database failed: the
    /// database watcher re-matches everything again.
    rematch_again: std::sync::atomic::AtomicBool,
    /// Wakes the database watcher before its next poll: this process
    /// imported a new generation (an upload through the API).
    db_changed: Arc<tokio::sync::Notify>,
}

impl Scanner {
    pub(crate) fn new(settings: ScanSettings) -> Scanner {
        Scanner {
            vulndb: VulnDb::in_data_dir(&settings.data_dir),
            settings,
            index: RwLock::new(None),
            wake: Arc::new(tokio::sync::Notify::new()),
            reading: Mutex::new(HashMap::new()),
            layers_read: std::sync::atomic::AtomicU64::new(0),
            rematch_again: std::sync::atomic::AtomicBool::new(false),
            db_changed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A new generation was imported here: load it now, not at the next poll.
    pub(crate) fn database_changed(&self) {
        self.db_changed.notify_one();
    }

    pub(crate) fn enabled(&self) -> bool {
        self.settings.workers > 0
    }

    pub(crate) fn index(&self) -> Option<(u64, Arc<DiskIndex>)> {
        self.index.read().expect("index lock").clone()
    }

    /// Starts the workers and the database watcher; they stop when the
    /// registry is dropped.
    pub(crate) fn start(registry: &Arc<Registry>) {
        if !registry.scanner.enabled() {
            return;
        }
        let weak = Arc::downgrade(registry);
        for _ in 0..registry.scanner.settings.workers {
            tokio::spawn(worker(weak.clone()));
        }
        tokio::spawn(watch_database(weak));
    }
}

impl Registry {
    /// Layers this process has read from storage to scan them; a layer
    /// whose facts are cached is not read again.
    pub fn scan_layers_read(&self) -> u64 {
        self.scanner.layers_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues scans for a pushed manifest: an image itself, an index's
    /// images one by one. `again` rescans finished ones ("scan now").
    /// Returns the digests queued.
    pub(crate) async fn request_scans(
        &self,
        repo: &str,
        manifest: &Manifest,
        digest: &Digest,
        again: bool,
    ) -> Result<Vec<String>, crate::RegistryError> {
        let mut queued = Vec::new();
        if !self.scanner.enabled() {
            return Ok(queued);
        }
        // Everything the gate judges is scanned: an image whatever its
        // config's type says, and each image an index reaches.
        let images = self.images_reached(repo, digest.as_str(), Some(manifest)).await?;
        for d in images {
            if self.meta.request_scan(&d, again).await? {
                queued.push(d);
            }
        }
        if !queued.is_empty() {
            self.scanner.wake.notify_one();
        }
        Ok(queued)
    }

    /// Queues a pushed manifest when its repository scans on push. A
    /// failure here is logged, never a failed push.
    pub(crate) async fn scan_on_push(&self, repo: &str, manifest: &Manifest, digest: &Digest) {
        if !self.scanner.enabled() {
            return;
        }
        let result = async {
            if self.meta.scan_on_push(repo).await? {
                self.request_scans(repo, manifest, digest, false).await?;
            }
            Ok::<_, crate::RegistryError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%repo, %digest, error = %e, "could not queue the scan of a pushed image");
        }
    }

    async fn layer_facts(&self, digest: &str) -> Result<LayerFacts, String> {
        if let Some(facts) = self.cached_facts(digest).await? {
            return Ok(facts);
        }
        let reading = ReadingGate::enter(&self.scanner.reading, digest);
        let _held = reading.gate.lock().await;
        // Another scan may have read it while this one waited.
        if let Some(facts) = self.cached_facts(digest).await? {
            return Ok(facts);
        }
        self.read_layer_facts(digest).await
    }

    /// Reads a layer blob from storage and caches its facts.
    async fn read_layer_facts(&self, digest: &str) -> Result<LayerFacts, String> {
        let parsed: Digest = digest.parse().map_err(|e| format!("{e}"))?;
        let path = self.store.blob_path(&parsed);
        let limits = self.scanner.settings.limits;
        let threads = Threads::for_layer_workers(self.scanner.settings.layer_workers);
        let facts = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path).map_err(|e| format!("layer {parsed}: {e}"))?;
            read_layer_with(file, &limits, threads).map_err(|e| format!("layer {parsed}: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        self.scanner
            .layers_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let json = serde_json::to_string(&facts).expect("facts serialize");
        self.meta
            .put_layer_facts(digest, &json)
            .await
            .map_err(|e| e.to_string())?;
        Ok(facts)
    }

    /// Cached facts from this version of the layer reader, if any.
    async fn cached_facts(&self, digest: &str) -> Result<Option<LayerFacts>, String> {
        let cached = self.meta.layer_facts(digest).await.map_err(|e| e.to_string())?;
        Ok(cached
            .and_then(|json| serde_json::from_str::<LayerFacts>(&json).ok())
            .filter(|f| f.version == FACTS_VERSION))
    }

    async fn scan_image(&self, digest: &str) -> Result<(), String> {
        let started = now_rfc3339();
        let manifest = self
            .meta
            .manifest_by_digest(digest)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the manifest is no longer in any repository".to_string())?;
        let manifest = Manifest::parse(&manifest.content, Some(&manifest.media_type)).map_err(|e| e.to_string())?;
        // Up to `layer_workers` layers are read at once; `buffered` hands
        // their facts back in layer order, whatever order they finish in,
        // so the merge below sees the overlay as it is.
        // (Descriptors by value: a closure over borrowed ones trips the
        // compiler's Send check for the spawned worker.)
        let mut facts: Vec<LayerFacts> = futures_util::stream::iter(manifest.layers.clone())
            .map(|l| self.scannable_layer_facts(l))
            .buffered(self.scanner.settings.layer_workers.max(1))
            .try_collect()
            .await?;
        let digests: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        // Following links, merging and matching are work over data an image
        // controls: off the async threads, like reading the layers. Links
        // are resolved for this image only (a symlink's target depends on
        // the layers below it), never into the cached layer facts.
        let index = self.scanner.index();
        let paths: Vec<std::path::PathBuf> = digests.iter().map(|d| self.store.blob_path(d)).collect();
        let limits = self.scanner.settings.limits;
        let subject_digest = digest.to_string();
        let (layers, generation, findings, sbom, cyclonedx) = tokio::task::spawn_blocking(move || {
            resolve_links(&mut facts, &limits, |i, wanted| {
                let file = std::fs::File::open(&paths[i]).map_err(|e| format!("layer {}: {e}", digests[i]))?;
                read_files(file, wanted, &limits).map_err(|e| format!("layer {}: {e}", digests[i]))
            })?;
            let layers: Vec<(String, LayerFacts)> = digests.iter().map(ToString::to_string).zip(facts).collect();
            let image = merge(layers.iter().map(|(d, f)| (d.as_str(), f)));
            let (generation, findings) = match index {
                Some((generation, index)) => (
                    Some(generation as i64),
                    match_image(&image, index.as_ref()).map_err(|e| e.to_string())?,
                ),
                None => (None, Vec::new()),
            };
            let sbom = sbom_to_bytes(&image);
            // The SBOM the registry attests (`signing/attestations.rs`).
            let (created, serial) = (now_rfc3339(), uuid::Uuid::new_v4().to_string());
            let subject = portcullis_scan::sbom::Subject {
                name: &subject_digest,
                manifest_digest: Some(&subject_digest),
                created: &created,
                serial: &serial,
                tool_version: env!("CARGO_PKG_VERSION"),
            };
            let cyclonedx = portcullis_scan::sbom::Format::CycloneDx.document(&subject, &image, &findings);
            Ok::<_, String>((layers, generation, findings, sbom, cyclonedx))
        })
        .await
        .map_err(|e| e.to_string())??;
        let layer_digests: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
        let severity = counts(&findings);
        let extra =
            serde_json::json!({"summary": crate::webhooks::summary_json(&severity), "database_generation": generation});
        let events = |repos: &[(String, String)]| self.scan_events(repos, digest, "SCAN_COMPLETED", &extra);
        let outcome = ScanOutcome {
            layers: &serde_json::to_string(&layer_digests).expect("json"),
            sbom: &sbom,
            findings: &serde_json::to_string(&findings).expect("json"),
            db_generation: generation,
            counts: severity,
            events: &events,
        };
        // Attested before the result is committed: whoever sees the scan
        // done (or hears SCAN_COMPLETED) finds its attestations there.
        self.attest_scan(crate::signing::attestations::ScanRecord {
            digest,
            cyclonedx,
            findings: serde_json::to_value(&findings).expect("json"),
            summary: crate::webhooks::summary_json(&severity),
            generation,
            started,
            finished: now_rfc3339(),
        })
        .await;
        self.meta
            .finish_scan(digest, &outcome)
            .await
            .map_err(|e| e.to_string())?;
        self.dispatcher.wake.notify_one();
        // A database loaded while this scan ran: the re-match it started
        // may have missed this row (not yet done). The index is set before
        // that re-match starts, so checking after the commit closes the gap.
        if let Some((loaded, index)) = self.scanner.index() {
            if Some(loaded as i64) != generation {
                // The scan itself succeeded and is committed: a failed
                // re-match leaves it to the watcher, never fails the scan.
                if let Err(e) = self.rematch_one(digest, &sbom, loaded, index).await {
                    tracing::warn!(%digest, error = %e, "re-matching a fresh scan; the database watcher retries");
                    self.scanner
                        .rematch_again
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        self.promote_on_scan(digest).await;
        Ok(())
    }

    /// A layer's facts, cached or read. A non-distributable ("foreign")
    /// layer still runs: a runtime fetches it from its URLs. It is scanned
    /// when its bytes are here; otherwise the scan can't vouch for the
    /// image and fails.
    async fn scannable_layer_facts(&self, layer: portcullis_oci::Descriptor) -> Result<LayerFacts, String> {
        if media_type::is_non_distributable(&layer.media_type)
            && !self
                .meta
                .blob_known(layer.digest.as_str())
                .await
                .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "layer {} is non-distributable and its bytes are not in this registry: it can't be scanned",
                layer.digest
            ));
        }
        self.layer_facts(layer.digest.as_str()).await
    }

    /// Matches one stored SBOM against `index` (generation `loaded`).
    async fn rematch_one(&self, digest: &str, sbom: &[u8], loaded: u64, index: Arc<DiskIndex>) -> Result<(), String> {
        let image = sbom_from_bytes(sbom).ok_or("the SBOM just stored is unreadable")?;
        let findings = tokio::task::spawn_blocking(move || match_image(&image, index.as_ref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let json = serde_json::to_string(&findings).expect("json");
        self.meta
            .update_findings(loaded as i64, &[(digest.to_string(), json, counts(&findings))])
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Matches every stored SBOM against the index in force; returns how
    /// many were matched, adding the digests whose counts changed to
    /// `changed`.
    /// `changed` keeps what earlier, failed runs found changed (their
    /// pages are committed and would not look changed again).
    async fn rematch_all(
        &self,
        generation: u64,
        index: &Arc<DiskIndex>,
        changed: &mut Vec<String>,
    ) -> Result<usize, crate::RegistryError> {
        let mut after = String::new();
        let mut done = 0;
        // Images share most packages: each (package, version) is evaluated once.
        let mut cache = MatchCache::default();
        loop {
            let page = self.meta.finished_sboms(&after, 200).await?;
            let Some(last) = page.last() else { break };
            after = last.0.clone();
            // Each page is matched on a blocking thread, the cache going along.
            let index = index.clone();
            let (rows, returned) = tokio::task::spawn_blocking(move || {
                let mut rows = Vec::with_capacity(page.len());
                for (digest, sbom) in page {
                    let Some(image) = sbom_from_bytes(&sbom) else {
                        tracing::warn!(%digest, "stored SBOM unreadable; scan it again");
                        continue;
                    };
                    let findings = match match_image_with(&image, index.as_ref(), &mut cache) {
                        Ok(f) => f,
                        Err(e) => return Err(e),
                    };
                    let json = serde_json::to_string(&findings).expect("json");
                    rows.push((digest, json, counts(&findings)));
                }
                Ok((rows, cache))
            })
            .await
            .map_err(|e| crate::RegistryError::Internal(e.to_string()))?
            .map_err(|e| crate::RegistryError::Internal(e.to_string()))?;
            cache = returned;
            done += rows.len();
            changed.extend(self.meta.update_findings(generation as i64, &rows).await?);
        }
        Ok(done)
    }
}

/// A turn at reading one layer digest: scans that want the same layer
/// queue on one gate, so the first reads it and the rest find it cached.
/// Leaving (also when a scan is dropped half-way) removes the gate once no
/// one else holds it.
struct ReadingGate<'a> {
    gates: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    digest: String,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> ReadingGate<'a> {
    fn enter(gates: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>, digest: &str) -> ReadingGate<'a> {
        let gate = gates
            .lock()
            .expect("reading lock")
            .entry(digest.to_string())
            .or_default()
            .clone();
        ReadingGate {
            gates,
            digest: digest.to_string(),
            gate,
        }
    }
}

impl Drop for ReadingGate<'_> {
    fn drop(&mut self) {
        let mut gates = self.gates.lock().expect("reading lock");
        // Let go under the lock (where gates are handed out): a count of
        // one is then the map's alone, and no one waits.
        drop(std::mem::take(&mut self.gate));
        if gates.get(&self.digest).is_some_and(|g| Arc::strong_count(g) == 1) {
            gates.remove(&self.digest);
        }
    }
}

/// Stored SBOMs are zstd-compressed JSON: a re-match reads every one of
/// them, and JSON of a few hundred packages shrinks about tenfold.
pub(crate) fn sbom_to_bytes(image: &ImageFacts) -> Vec<u8> {
    let json = serde_json::to_vec(image).expect("json");
    zstd::bulk::compress(&json, 3).expect("compressing in memory")
}

/// The largest SBOM JSON inflated from the database.
const MAX_SBOM_JSON: usize = 256 << 20;

pub(crate) fn sbom_from_bytes(bytes: &[u8]) -> Option<ImageFacts> {
    let json = zstd::bulk::decompress(bytes, MAX_SBOM_JSON).ok()?;
    serde_json::from_slice(&json).ok()
}

fn counts(findings: &[Finding]) -> SeverityCounts {
    severity_counts(findings).map(|n| n as i64)
}

async fn worker(weak: Weak<Registry>) {
    loop {
        let Some(reg) = weak.upgrade() else { return };
        let wake = reg.scanner.wake.clone();
        let mut worked = false;
        match reg.meta.queued_scans(4).await {
            Ok(digests) => {
                for digest in digests {
                    match reg.meta.start_scan(&digest).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "scan queue");
                            break;
                        }
                    }
                    worked = true;
                    let started = std::time::Instant::now();
                    match reg.scan_image(&digest).await {
                        Ok(()) => tracing::info!(%digest, ms = started.elapsed().as_millis() as u64, "scanned"),
                        Err(e) => {
                            tracing::warn!(%digest, error = %e, "scan failed");
                            let extra = serde_json::json!({"error": e});
                            let events =
                                |repos: &[(String, String)]| reg.scan_events(repos, &digest, "SCAN_FAILED", &extra);
                            if let Err(e) = reg.meta.fail_scan(&digest, &e, &events).await {
                                tracing::warn!(%digest, error = %e, "recording a failed scan");
                            }
                            // The policies say so too: their last word must
                            // not stay "the scan is queued".
                            reg.promote_on_scan(&digest).await;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "scan queue"),
        }
        let poll = reg.scanner.settings.db_poll;
        drop(reg);
        if !worked {
            let _ = tokio::time::timeout(poll, wake.notified()).await;
        }
    }
}

/// Loads the database in force at start, then whenever `db import` makes a
/// new generation, and re-matches the stored SBOMs each time.
async fn watch_database(weak: Weak<Registry>) {
    let mut first = true;
    let mut unmatched: Option<(u64, Arc<DiskIndex>)> = None;
    let mut changed: Vec<String> = Vec::new();
    loop {
        let Some(reg) = weak.upgrade() else { return };
        if first {
            match reg.meta.requeue_interrupted_scans().await {
                Ok((requeued, failed)) => {
                    if requeued > 0 {
                        tracing::info!(scans = requeued, "resuming scans a previous run left unfinished");
                    }
                    if failed > 0 {
                        tracing::warn!(
                            scans = failed,
                            "scans interrupted too often were marked failed instead of resumed"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "requeueing interrupted scans"),
            }
            first = false;
        }
        let loaded = reg.scanner.index().map(|(g, _)| g);
        let status = match reg.scanner.vulndb.status() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading the vulnerability database status");
                None
            }
        };
        if status.is_some_and(|s| Some(s.generation) != loaded) {
            let db = reg.scanner.vulndb.clone();
            match tokio::task::spawn_blocking(move || db.open()).await {
                Ok(Ok(Some((status, index)))) => {
                    let generation = status.generation;
                    let index = Arc::new(index);
                    *reg.scanner.index.write().expect("index lock") = Some((generation, index.clone()));
                    unmatched = Some((generation, index));
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "loading the vulnerability database"),
                Err(e) => tracing::warn!(error = %e, "loading the vulnerability database"),
            }
        }
        // A re-match that failed (a busy database, say) is tried again at
        // the next poll: stored scans never keep an old generation's counts.
        if reg
            .scanner
            .rematch_again
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            unmatched = unmatched.or_else(|| reg.scanner.index());
        }
        if let Some((generation, index)) = unmatched.take() {
            let started = std::time::Instant::now();
            match reg.rematch_all(generation, &index, &mut changed).await {
                Ok(n) => {
                    tracing::info!(
                        generation,
                        advisories = index.len(),
                        sboms = n,
                        ms = started.elapsed().as_millis() as u64,
                        "vulnerability database loaded; stored SBOMs re-matched"
                    );
                    reg.promote_after_rematch(&std::mem::take(&mut changed)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-matching stored SBOMs; trying again");
                    unmatched = Some((generation, index));
                }
            }
        }
        let poll = reg.scanner.settings.db_poll;
        let changed = reg.scanner.db_changed.clone();
        drop(reg);
        let _ = tokio::time::timeout(poll, changed.notified()).await;
    }
}

/// Now, as RFC 3339 UTC seconds.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    portcullis_vulndb::rfc3339(secs)
}
