//! Updating the database from its sources without a person: each source
//! is asked whether it changed (`If-None-Match` / `If-Modified-Since`; a
//! file's size and modification time), what changed is downloaded into
//! `<vulndb>/downloads` (resumed with `Range` + `If-Range` after an
//! interruption, bounded by the import's input limit), and everything that
//! changed goes into ONE import: one new generation, or none. A source
//! whose file turns out unreadable is left out of that import and keeps its
//! previous records; its error is remembered for status.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{
    CONTENT_RANGE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE, USER_AGENT,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::sources::{parse_sources, unix_now, Location, Source, SourceState};
use crate::{io_err, ImportReport, Limits, Progress, VulnDb, VulnDbError};

/// How an update downloads.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Bounds the import, and each download (a file is never larger than
    /// what it may decompress to).
    pub limits: Limits,
    pub connect_timeout: Duration,
    /// Silence this long ends a download; the next update resumes it.
    pub read_timeout: Duration,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What one update did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    pub sources: Vec<SourceOutcome>,
    /// The import of what changed, when something did.
    pub import: Option<ImportReport>,
    /// Sources no longer listed whose records left the database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

impl UpdateReport {
    pub fn failed(&self) -> usize {
        self.sources.iter().filter(|s| s.result == Outcome::Failed).count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The source answered "not modified" (or the file is as imported).
    Unchanged,
    Imported,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceOutcome {
    pub url: String,
    pub name: String,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes received in this update.
    pub downloaded: u64,
    /// Where a resumed download started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
}

/// A new version of a source, on disk and ready to import.
struct Fetched {
    path: PathBuf,
    etag: Option<String>,
    last_modified: Option<String>,
    file_version: Option<String>,
    /// See [`SourceState::osv_modified`].
    osv_modified: Option<String>,
}

/// What a download left behind to resume: beside `<name>.partial`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartialMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    total: Option<u64>,
}

/// How many times one update asks a source again when its answer throws
/// a kept partial file away (a changed file, a range refused).
const ATTEMPTS: usize = 2;

impl VulnDb {
    /// Updates the database from `urls` once (see the module comment).
    /// `Err` only when nothing could be tried (a bad URL, another update
    /// running); each source's failure is in the report and in status.
    pub async fn update(
        &self,
        urls: &[String],
        options: &UpdateOptions,
        progress: Arc<dyn Progress + Send + Sync>,
    ) -> Result<UpdateReport, VulnDbError> {
        let sources = parse_sources(urls)?;
        let downloads = self.dir().join("downloads");
        let ready_dir = downloads.join("ready");
        fs::create_dir_all(&ready_dir).map_err(io_err(&ready_dir))?;
        let lock_path = self.dir().join("update.lock");
        let lock = fs::File::create(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(VulnDbError::UpdateBusy(self.dir().to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        // Leftovers of an update that died before its import.
        if let Ok(entries) = fs::read_dir(&ready_dir) {
            for e in entries.flatten() {
                let _ = fs::remove_file(e.path()).or_else(|_| fs::remove_dir_all(e.path()));
            }
        }
        let state = self.update_state()?;
        let client = client(options).map_err(|e| VulnDbError::BadSource {
            url: String::new(),
            why: format!("the HTTP client: {e}"),
        })?;
        let started = unix_now();
        let mut outcomes = Vec::with_capacity(sources.len());
        let mut fetched: Vec<Option<Fetched>> = Vec::with_capacity(sources.len());
        for source in &sources {
            let imported = state.sources.get(&source.url);
            let mut outcome = SourceOutcome {
                url: source.url.clone(),
                name: source.name.clone(),
                result: Outcome::Unchanged,
                error: None,
                downloaded: 0,
                resumed_from: None,
            };
            let result = match &source.location {
                Location::Http(url) => match osv_listing(url) {
                    Some(listing) => {
                        let at = OsvBucket {
                            db: self,
                            client: &client,
                            listing,
                            ready: &ready_dir,
                        };
                        at.fetch(source, imported, &downloads, options, &*progress, &mut outcome)
                            .await
                    }
                    None => fetch_http(&client, source, imported, &downloads, options, &*progress, &mut outcome).await,
                },
                Location::File(path) => fetch_file(source, path, imported, &ready_dir),
            };
            let result = result.and_then(|f| match f {
                Some(f) => sniff(&f.path, &options.limits).map(|()| Some(f)),
                None => Ok(None),
            });
            match result {
                Ok(f) => fetched.push(f),
                Err(why) => {
                    outcome.result = Outcome::Failed;
                    outcome.error = Some(why);
                    fetched.push(None);
                }
            }
            outcomes.push(outcome);
        }
        let import = self.import_changed(&mut outcomes, &fetched, options, &progress).await;
        for f in fetched.iter().flatten() {
            let _ = fs::remove_file(&f.path);
        }
        // Sources an earlier update brought in and no longer listed go.
        let gone: Vec<String> = state
            .sources
            .iter()
            .filter(|(url, st)| !sources.iter().any(|s| &s.url == *url || s.name == st.name))
            .map(|(_, st)| st.name.clone())
            .collect();
        let removed = if gone.is_empty() {
            Vec::new()
        } else {
            let (db, names) = (self.clone(), gone.clone());
            match blocking(move || db.remove_sources(&names)).await? {
                Some(_) => gone,
                None => Vec::new(),
            }
        };
        let report = UpdateReport {
            sources: outcomes,
            import,
            removed,
        };
        self.remember(&sources, &report, &fetched, started)?;
        Ok(report)
    }

    /// One import of every changed source that reads; a source the import
    /// finds unreadable is marked failed and the rest imported without it.
    async fn import_changed(
        &self,
        outcomes: &mut [SourceOutcome],
        fetched: &[Option<Fetched>],
        options: &UpdateOptions,
        progress: &Arc<dyn Progress + Send + Sync>,
    ) -> Option<ImportReport> {
        let mut pending: Vec<usize> = (0..fetched.len()).filter(|i| fetched[*i].is_some()).collect();
        while !pending.is_empty() {
            let paths: Vec<PathBuf> = pending
                .iter()
                .filter_map(|i| fetched[*i].as_ref().map(|f| f.path.clone()))
                .collect();
            let (db, limits, bar, inputs) = (self.clone(), options.limits, progress.clone(), paths.clone());
            let result = blocking(move || db.import(&inputs, false, &limits, &*bar)).await;
            match result {
                Ok(report) => {
                    for i in &pending {
                        outcomes[*i].result = Outcome::Imported;
                        let name = outcomes[*i].name.clone();
                        // JSON that holds no record the import recognised
                        // replaced the source with nothing: say so.
                        if let Some(s) = report
                            .sources
                            .iter()
                            .find(|s| s.name == name && s.records == 0 && s.rejected_count > 0)
                        {
                            outcomes[*i].result = Outcome::Failed;
                            outcomes[*i].error = Some(format!(
                                "no record recognised ({} rejected{})",
                                s.rejected_count,
                                s.rejected
                                    .first()
                                    .map(|r| format!("; first: {}", r.reason))
                                    .unwrap_or_default()
                            ));
                        }
                    }
                    return Some(report);
                }
                Err(e) => {
                    let message = e.to_string();
                    // The input the error names (the longest path, as one
                    // name may begin another).
                    let culprit = pending
                        .iter()
                        .zip(&paths)
                        .filter(|(_, p)| names(&message, p))
                        .max_by_key(|(_, p)| p.as_os_str().len())
                        .map(|(i, _)| *i);
                    match culprit {
                        Some(i) => {
                            outcomes[i].result = Outcome::Failed;
                            outcomes[i].error = Some(message);
                            pending.retain(|p| *p != i);
                        }
                        None => {
                            for i in &pending {
                                outcomes[*i].result = Outcome::Failed;
                                outcomes[*i].error = Some(message.clone());
                            }
                            return None;
                        }
                    }
                }
            }
        }
        None
    }

    /// Writes what this update learnt into `sources.json`: validators only
    /// of versions now imported, so a failed one is fetched again.
    fn remember(
        &self,
        sources: &[Source],
        report: &UpdateReport,
        fetched: &[Option<Fetched>],
        started: u64,
    ) -> Result<(), VulnDbError> {
        let now = unix_now();
        let all_ok = report.failed() == 0;
        self.change_state(|state| {
            state.sources.retain(|url, _| sources.iter().any(|s| &s.url == url));
            for ((source, outcome), f) in sources.iter().zip(&report.sources).zip(fetched) {
                let st = state.sources.entry(source.url.clone()).or_insert_with(|| SourceState {
                    name: source.name.clone(),
                    ..SourceState::default()
                });
                st.name = source.name.clone();
                st.last_attempt = Some(started);
                match outcome.result {
                    Outcome::Failed => {
                        st.last_error = outcome.error.clone();
                        st.last_error_at = Some(now);
                    }
                    Outcome::Unchanged | Outcome::Imported => {
                        st.last_success = Some(now);
                        st.last_error = None;
                        st.last_error_at = None;
                    }
                }
                if let (Outcome::Imported, Some(f)) = (outcome.result, f) {
                    st.etag = f.etag.clone();
                    st.last_modified = f.last_modified.clone();
                    st.file_version = f.file_version.clone();
                    st.osv_modified = f.osv_modified.clone();
                    st.last_change = Some(now);
                }
            }
            state.last_run = Some(now);
            state.last_run_ok = all_ok;
            if all_ok {
                state.updated_at = Some(now);
            }
        })
    }
}

/// Database work (imports: file I/O, SQLite) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VulnDbError> + Send + 'static,
) -> Result<T, VulnDbError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(VulnDbError::Unreadable {
            path: String::new(),
            why: e.to_string(),
        })
    })
}

/// Whether `message` names `path` as the thing that failed.
fn names(message: &str, path: &Path) -> bool {
    let p = path.display().to_string();
    [":", "/", "!"].iter().any(|sep| message.contains(&format!("{p}{sep}")))
}

fn client(options: &UpdateOptions) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        // Ranges and sizes are of the bytes as published.
        .no_gzip()
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let to = attempt.url().scheme().to_string();
            let from_https = attempt.previous().last().is_some_and(|u| u.scheme() == "https");
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if to != "https" && to != "http" {
                attempt.error(format!("a redirect to a {to}: URL"))
            } else if from_https && to == "http" {
                attempt.error("a redirect from https to plain http")
            } else if attempt.previous().first().is_some_and(|u| !is_internal(u)) && is_internal(attempt.url()) {
                let host = attempt.url().host_str().unwrap_or_default().to_string();
                attempt.error(format!("a redirect from a public address to an internal one ({host})"))
            } else {
                attempt.follow()
            }
        }))
        .build()
}

/// Whether a URL names this machine or a private network by its address
/// (or `localhost`): a public feed must not redirect the server into the
/// network it sits in. Names that resolve to such addresses are not caught
/// here; sources are configured by administrators, who can name internal
/// hosts directly.
fn is_internal(url: &reqwest::Url) -> bool {
    use std::net::IpAddr;
    let v4 = |ip: std::net::Ipv4Addr| {
        ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast()
            // 100.64.0.0/10, carrier-grade NAT, often a cloud's internal range
            || (ip.octets()[0] == 100 && ip.octets()[1] & 0xc0 == 64)
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => v4(ip),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (ip.segments()[0] & 0xffc0) == 0xfe80 // link local
                || ip.to_ipv4_mapped().is_some_and(v4)
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok()
        }
        None => true,
    }
}

/// A reqwest error with its causes, which say what actually went wrong.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `(start, total)` of `Content-Range: bytes START-END/TOTAL` (or `*/TOTAL`).
fn content_range(value: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let total = if total == "*" { None } else { Some(total.parse().ok()?) };
    let start = if range == "*" {
        None
    } else {
        Some(range.split_once('-')?.0.parse().ok()?)
    };
    Some((start, total))
}

/// Downloads a new version of an HTTP source, or `None` when it is unchanged.
async fn fetch_http(
    client: &reqwest::Client,
    source: &Source,
    imported: Option<&SourceState>,
    downloads: &Path,
    options: &UpdateOptions,
    progress: &(dyn Progress + Send + Sync),
    outcome: &mut SourceOutcome,
) -> Result<Option<Fetched>, String> {
    let partial = downloads.join(format!("{}.partial", source.name));
    let sidecar = downloads.join(format!("{}.partial.json", source.name));
    let discard = || {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(&sidecar);
    };
    let max = options.limits.max_input_bytes;
    let mut resume: Option<(PartialMeta, u64)> = fs::read(&sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice::<PartialMeta>(&b).ok())
        .filter(|m| m.url == source.url)
        .and_then(|m| Some((m, fs::metadata(&partial).ok()?.len())))
        .filter(|(_, len)| *len > 0);
    if resume.is_none() {
        discard();
    }
    for _ in 0..ATTEMPTS {
        let mut req = client
            .get(source.url.as_str())
            .header(USER_AGENT, concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        if let Some(st) = imported {
            if let Some(etag) = &st.etag {
                req = req.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &st.last_modified {
                req = req.header(IF_MODIFIED_SINCE, lm);
            }
        }
        // Resume only under a validator that proves the bytes kept are of
        // the same version (a weak ETag does not).
        let validator = resume.as_ref().and_then(|(m, _)| {
            m.etag
                .clone()
                .filter(|e| !e.starts_with("W/"))
                .or_else(|| m.last_modified.clone())
        });
        let offset = match (&resume, &validator) {
            (Some((_, len)), Some(v)) => {
                req = req.header(RANGE, format!("bytes={len}-")).header(IF_RANGE, v);
                *len
            }
            _ => 0,
        };
        let resp = req.send().await.map_err(|e| describe(&e))?;
        let status = resp.status();
        let range = header(&resp, CONTENT_RANGE).and_then(|v| content_range(&v));
        match status {
            StatusCode::NOT_MODIFIED => {
                discard();
                return Ok(None);
            }
            // Asked for the bytes after the end: the kept file may be whole.
            StatusCode::RANGE_NOT_SATISFIABLE if offset > 0 => {
                let total = resume.as_ref().and_then(|(m, _)| m.total);
                if range.and_then(|(_, t)| t) == Some(offset) && total.is_none_or(|t| t == offset) {
                    let meta = resume.take().map(|(m, _)| m).expect("resuming");
                    outcome.resumed_from = Some(offset);
                    return finish(&partial, &sidecar, downloads, source, meta).map(Some);
                }
                discard();
                resume = None;
                continue;
            }
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                if range.and_then(|(start, _)| start) != Some(offset) {
                    discard();
                    resume = None;
                    continue;
                }
                outcome.resumed_from = Some(offset);
            }
            StatusCode::OK => {}
            s => return Err(format!("HTTP {s} from {}", source.url)),
        }
        let append = status == StatusCode::PARTIAL_CONTENT;
        let total = if append {
            range.and_then(|(_, t)| t)
        } else {
            resp.content_length()
        };
        if let Some(t) = total.filter(|t| *t > max) {
            discard();
            return Err(format!("{t} bytes: larger than the input limit of {max} bytes"));
        }
        let meta = PartialMeta {
            url: source.url.clone(),
            etag: header(&resp, ETAG),
            last_modified: header(&resp, LAST_MODIFIED),
            total,
        };
        crate::write_synced(&sidecar, &serde_json::to_vec(&meta).expect("json")).map_err(|e| e.to_string())?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&partial)
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        let start = if append { offset } else { 0 };
        let mut have = start;
        progress.start(&source.name, total.unwrap_or(0));
        progress.advance(start);
        let mut resp = resp;
        let body = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    have += chunk.len() as u64;
                    outcome.downloaded += chunk.len() as u64;
                    if have > max {
                        break Err(format!("more than the input limit of {max} bytes"));
                    }
                    if let Err(e) = file.write_all(&chunk).await {
                        break Err(format!("{}: {e}", partial.display()));
                    }
                    progress.advance(chunk.len() as u64);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(describe(&e)),
            }
        };
        progress.finish();
        let flushed = async {
            file.flush().await?;
            file.sync_all().await
        }
        .await;
        match body {
            Err(why) if have > max => {
                discard();
                return Err(why);
            }
            Err(why) => {
                // Kept, with its validators, for the next update to resume.
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                return Err(format!(
                    "the download stopped after {have}{of} bytes ({why}); the next update resumes it"
                ));
            }
            Ok(()) => {}
        }
        flushed.map_err(|e| format!("{}: {e}", partial.display()))?;
        if total.is_some_and(|t| t != have) {
            discard();
            return Err(format!(
                "the download ended at {have} of {} bytes",
                total.unwrap_or_default()
            ));
        }
        return finish(&partial, &sidecar, downloads, source, meta).map(Some);
    }
    Err(format!(
        "{} kept answering with a different version than the one being resumed",
        source.url
    ))
}

/// `modified_id.csv` beside an osv.dev-style `<Ecosystem>/all.zip`.
fn osv_listing(url: &reqwest::Url) -> Option<reqwest::Url> {
    if url.query().is_some() || !url.path().ends_with("/all.zip") {
        return None;
    }
    url.join("modified_id.csv").ok()
}

/// Records changed since the last update that one incremental update
/// fetches one by one; more, and the whole archive is cheaper.
const MAX_CHANGED: usize = 2000;
/// Bounds on `modified_id.csv` (osv.dev's largest ecosystem lists ~150k
/// records, ~7 MiB) and on one record.
const MAX_LISTING_BYTES: u64 = 64 << 20;
const MAX_RECORD_BYTES: u64 = 8 << 20;

/// osv.dev's bucket layout, as its own tools read it: `<Ecosystem>/all.zip`
/// holds every record, `modified_id.csv` beside it lists
/// `<RFC 3339 modified>,<ID>` newest first, and `<ID>.json` is each record.
/// The first update imports the archive and remembers the listing's
/// newest time; later ones fetch only the records listed after it and
/// import them over the source's stored records. Without a listing, or
/// with too many changes, the archive is fetched as any source is.
struct OsvBucket<'a> {
    db: &'a VulnDb,
    client: &'a reqwest::Client,
    listing: reqwest::Url,
    ready: &'a Path,
}

impl OsvBucket<'_> {
    async fn fetch(
        &self,
        source: &Source,
        imported: Option<&SourceState>,
        downloads: &Path,
        options: &UpdateOptions,
        progress: &(dyn Progress + Send + Sync),
        outcome: &mut SourceOutcome,
    ) -> Result<Option<Fetched>, String> {
        // Read before the archive: a record changed in between is fetched
        // again next time, never missed.
        let listing = self.get(&self.listing, MAX_LISTING_BYTES, outcome).await?;
        let listing = match listing {
            Some(bytes) => Some(String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", self.listing))?),
            None => None,
        };
        let newest = match &listing {
            Some(text) => newest_listed(text).map_err(|why| format!("{}: {why}", self.listing))?,
            None => None,
        };
        let mark = imported.and_then(|s| s.osv_modified.as_deref());
        // A listing older than what was imported (a mirror restored from
        // an old copy) says nothing reliable of what changed since.
        let went_back = match (&newest, mark) {
            (Some(n), Some(m)) => humantime::parse_rfc3339_weak(n).ok() < humantime::parse_rfc3339_weak(m).ok(),
            _ => false,
        };
        if let (Some(text), Some(mark), false) = (&listing, mark, went_back) {
            let changed = changed_since(text, mark, MAX_CHANGED).map_err(|why| format!("{}: {why}", self.listing))?;
            match changed {
                Some(ids) if ids.is_empty() => return Ok(None),
                Some(ids) => {
                    if let Some(path) = self.delta(source, &ids, options, outcome).await? {
                        // The records in force are no longer any one
                        // archive: a later fetch of it must not be conditional.
                        return Ok(Some(Fetched {
                            path,
                            etag: None,
                            last_modified: None,
                            file_version: None,
                            osv_modified: newest,
                        }));
                    }
                }
                None => {}
            }
        }
        let fetched = fetch_http(self.client, source, imported, downloads, options, progress, outcome).await?;
        Ok(fetched.map(|f| Fetched {
            osv_modified: newest,
            ..f
        }))
    }

    /// The source's stored records with `ids` fetched anew, ready to import
    /// under its name; `None` when the source is not in force.
    async fn delta(
        &self,
        source: &Source,
        ids: &Changed,
        options: &UpdateOptions,
        outcome: &mut SourceOutcome,
    ) -> Result<Option<PathBuf>, String> {
        let path = self.ready.join(&source.name);
        let replaced: std::collections::HashSet<String> = ids.keys().cloned().collect();
        let Some(mut records) = self
            .db
            .source_without(&source.name, &replaced, &path)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let mut total = 0u64;
        for (id, listed_at) in ids {
            // `./` keeps an id with a colon (ALSA-2024:1234) a path.
            let url = self
                .listing
                .join(&format!("./{id}.json"))
                .map_err(|e| format!("{id}: {e}"))?;
            let bytes = self
                .get(&url, MAX_RECORD_BYTES, outcome)
                .await?
                .ok_or_else(|| format!("{url} is listed in {} but not published", self.listing))?;
            total += bytes.len() as u64;
            if total > options.limits.max_input_bytes {
                return Err(format!(
                    "the changed records pass the input limit of {} bytes",
                    options.limits.max_input_bytes
                ));
            }
            let record: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not a JSON record: {e}"))?;
            if record.get("id").and_then(serde_json::Value::as_str) != Some(id.as_str()) {
                return Err(format!("{url} holds another record than {id}"));
            }
            // The stored copy is already left out: one that would not
            // import must fail the source, not vanish.
            let text = record.to_string();
            portcullis_scan::osv::Advisory::parse(&text).map_err(|e| format!("{url}: {e}"))?;
            // An older copy than listed (a cache's) would move the mark
            // past the change it lacks.
            let modified = record
                .get("modified")
                .and_then(serde_json::Value::as_str)
                .and_then(|m| humantime::parse_rfc3339_weak(m).ok());
            if modified.is_none_or(|m| m < *listed_at) {
                return Err(format!(
                    "{url} is older than {} lists it (modified {}); the next update tries again",
                    self.listing,
                    record
                        .get("modified")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("missing")
                ));
            }
            records.write(&text).map_err(|e| e.to_string())?;
        }
        records.finish().map_err(|e| e.to_string())?;
        Ok(Some(path))
    }

    /// A whole body of at most `max` bytes; `None` for a 404.
    async fn get(&self, url: &reqwest::Url, max: u64, outcome: &mut SourceOutcome) -> Result<Option<Vec<u8>>, String> {
        let mut resp = self
            .client
            .get(url.as_str())
            .header(USER_AGENT, concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            s => return Err(format!("HTTP {s} from {url}")),
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            outcome.downloaded += chunk.len() as u64;
            if (body.len() + chunk.len()) as u64 > max {
                return Err(format!("{url}: larger than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

/// One line of `modified_id.csv`: its time and id.
fn listed(line: &str) -> Result<(std::time::SystemTime, &str), String> {
    let (when, id) = line.split_once(',').ok_or("a line without a comma")?;
    let when = humantime::parse_rfc3339_weak(when.trim()).map_err(|e| format!("{when:?}: {e}"))?;
    // A time ahead of the clock would be kept as the mark and hide every
    // later change (while each update reports the source current).
    if when > std::time::SystemTime::now() + Duration::from_secs(86_400) {
        return Err(format!(
            "{:?} is in the future",
            line.split_once(',').map_or("", |(w, _)| w)
        ));
    }
    // The bucket's root listing names `<Ecosystem>/<ID>`; this one, ids.
    let id = id.trim();
    let id = match id.split_once('/') {
        Some((eco, id))
            if !eco.starts_with('.') && eco.bytes().all(|b| b.is_ascii_alphanumeric() || b" .:-".contains(&b)) =>
        {
            id
        }
        Some(_) => return Err(format!("{id:?} is not an OSV id")),
        None => id,
    };
    let ok = !id.is_empty()
        && id.len() <= 256
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:+-".contains(&b));
    if !ok {
        return Err(format!("{id:?} is not an OSV id"));
    }
    Ok((when, id))
}

/// The newest time `modified_id.csv` lists, as written there.
fn newest_listed(text: &str) -> Result<Option<String>, String> {
    let mut newest: Option<(std::time::SystemTime, &str)> = None;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (when, _) = listed(line).map_err(|why| format!("line {}: {why}", n + 1))?;
        if newest.is_none_or(|(t, _)| when > t) {
            newest = Some((when, line.split_once(',').map_or("", |(w, _)| w).trim()));
        }
    }
    Ok(newest.map(|(_, w)| w.to_string()))
}

/// The ids listed as modified after `mark`; `None` when there are more
/// than `max`. Every line is read: the order is osv.dev's habit, not a
/// promise a mirror keeps.
fn changed_since(text: &str, mark: &str, max: usize) -> Result<Option<Changed>, String> {
    let mark = humantime::parse_rfc3339_weak(mark).map_err(|e| format!("the kept time {mark:?}: {e}"))?;
    let mut ids = Changed::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let (when, id) = listed(line).map_err(|why| format!("line {}: {why}", n + 1))?;
        if when <= mark {
            continue;
        }
        let latest = ids.entry(id.to_string()).or_insert(when);
        *latest = (*latest).max(when);
        if ids.len() > max {
            return Ok(None);
        }
    }
    Ok(Some(ids))
}

/// Ids listed as changed, with the latest time listed for each.
type Changed = std::collections::HashMap<String, std::time::SystemTime>;

/// Moves a whole download into `ready/` under the source's name.
fn finish(
    partial: &Path,
    sidecar: &Path,
    downloads: &Path,
    source: &Source,
    meta: PartialMeta,
) -> Result<Fetched, String> {
    let path = downloads.join("ready").join(&source.name);
    fs::rename(partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = fs::remove_file(sidecar);
    Ok(Fetched {
        path,
        etag: meta.etag,
        last_modified: meta.last_modified,
        file_version: None,
        osv_modified: None,
    })
}

/// A `file://` source: its version is its size and modification time (for
/// a directory, its files' count, total size and latest time); a new one
/// is imported through a link named after the source.
fn fetch_file(
    source: &Source,
    path: &Path,
    imported: Option<&SourceState>,
    ready: &Path,
) -> Result<Option<Fetched>, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let version = if meta.is_dir() {
        let (mut files, mut bytes, mut latest) = (0u64, 0u64, 0u128);
        walk_versions(path, &mut files, &mut bytes, &mut latest, 0).map_err(|e| format!("{}: {e}", path.display()))?;
        format!("dir:{files}:{bytes}:{latest}")
    } else {
        format!("file:{}:{}", meta.len(), mtime_nanos(&meta))
    };
    if imported.and_then(|s| s.file_version.as_deref()) == Some(version.as_str()) {
        return Ok(None);
    }
    let link = ready.join(&source.name);
    std::os::unix::fs::symlink(path, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    Ok(Some(Fetched {
        path: link,
        etag: None,
        last_modified: None,
        file_version: Some(version),
        osv_modified: None,
    }))
}

fn mtime_nanos(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// Files walked for a directory source's version (its import walks the same).
const MAX_WALK: u64 = 1_000_000;

fn walk_versions(dir: &Path, files: &mut u64, bytes: &mut u64, latest: &mut u128, depth: usize) -> std::io::Result<()> {
    if depth > 64 {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_versions(&entry.path(), files, bytes, latest, depth + 1)?;
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            *files += 1;
            *bytes += meta.len();
            *latest = (*latest).max(mtime_nanos(&meta));
            if *files > MAX_WALK {
                return Err(std::io::Error::other(format!("more than {MAX_WALK} files")));
            }
        }
    }
    Ok(())
}

/// Refuses what no publication looks like before it reaches the import:
/// an empty file, or (after gzip or zstd) text that is not JSON, such as a
/// proxy's HTML error page. Zip archives and directories pass to the import.
fn sniff(path: &Path, limits: &Limits) -> Result<(), String> {
    if path.is_dir() {
        return Ok(());
    }
    let file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.metadata().map_err(|e| e.to_string())?.len() == 0 {
        return Err("the file is empty".into());
    }
    let mut head = [0u8; 4];
    let mut raw = fs::File::open(path).map_err(|e| e.to_string())?;
    let n = raw.read(&mut head).map_err(|e| e.to_string())?;
    if head[..n].starts_with(b"PK") {
        return Ok(());
    }
    let decoded =
        portcullis_scan::decompress::open(file, limits.max_input_bytes).map_err(|e| format!("not readable: {e}"))?;
    let mut start = Vec::with_capacity(4096);
    decoded
        .take(4096)
        .read_to_end(&mut start)
        .map_err(|e| format!("not readable: {e}"))?;
    let text = String::from_utf8_lossy(&start);
    let first = text.trim_start_matches('\u{feff}').trim_start().chars().next();
    match first {
        Some('{') | Some('[') => Ok(()),
        None => Err("no content after decompression".into()),
        Some(_) => {
            let shown: String = text.trim_start().chars().take(40).collect();
            Err(format!("not JSON, a zip or a gzip of JSON (it begins {shown:?})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `modified_id.csv` as osv.dev writes it (newest first, per ecosystem
    /// `<time>,<ID>`, at the root `<time>,<Ecosystem>/<ID>`): what changed
    /// after the time kept, and lines that must stop the update.
    #[test]
    fn osv_listings_say_what_changed() {
        let listing = "2026-08-21T10:00:00.123456Z,DSA-6335-1\n\
                       2026-08-20T09:00:00Z,Debian/DLA-4742-1\n\
                       2026-08-19T00:00:00Z,ALSA-2024:1234\n\
                       2026-08-01T00:00:00Z,DSA-5000-1\n";
        assert_eq!(
            newest_listed(listing).unwrap().as_deref(),
            Some("2026-08-21T10:00:00.123456Z")
        );
        let changed = |mark: &str, max: usize| {
            changed_since(listing, mark, max).map(|o| {
                o.map(|ids| {
                    let mut ids: Vec<String> = ids.into_keys().collect();
                    ids.sort();
                    ids
                })
            })
        };
        let table: [(&str, usize, Option<Vec<&str>>); 5] = [
            ("2026-08-21T10:00:00.123456Z", 10, Some(vec![])),
            ("2026-08-21T10:00:00Z", 10, Some(vec!["DSA-6335-1"])),
            ("2026-08-19T00:00:00Z", 10, Some(vec!["DLA-4742-1", "DSA-6335-1"])),
            (
                "2020-01-01T00:00:00Z",
                10,
                Some(vec!["ALSA-2024:1234", "DLA-4742-1", "DSA-5000-1", "DSA-6335-1"]),
            ),
            ("2020-01-01T00:00:00Z", 3, None),
        ];
        for (mark, max, want) in table {
            let want = want.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(changed(mark, max).unwrap(), want, "{mark} {max}");
        }
        for (bad, why) in [
            ("2026-08-21T10:00:00Z,../../etc/passwd\n", "not an OSV id"),
            ("2026-08-21T10:00:00Z,a?b\n", "not an OSV id"),
            ("yesterday,DSA-1-1\n", "yesterday"),
            ("DSA-1-1\n", "without a comma"),
            ("2026-08-21T10:00:00Z,\n", "not an OSV id"),
            ("9999-12-31T00:00:00Z,DSA-1-1\n", "in the future"),
        ] {
            let err = changed_since(bad, "2020-01-01T00:00:00Z", 10).unwrap_err();
            assert!(err.contains(why) && err.contains("line 1"), "{bad}: {err}");
            assert!(newest_listed(bad).is_err(), "{bad}");
        }
        let at = |path: &str| osv_listing(&path.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            at("https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip").as_deref(),
            Some("https://osv-vulnerabilities.storage.googleapis.com/Debian/modified_id.csv")
        );
        assert_eq!(at("https://example.com/debian.osv.jsonl.gz"), None);
        assert_eq!(at("https://example.com/Debian/all.zip?x=1"), None);
    }

    #[test]
    fn internal_addresses_are_told_apart() {
        let cases = [
            ("https://osv-vulnerabilities.storage.googleapis.com/x", false),
            ("https://8.8.8.8/x", false),
            ("https://[2001:4860::8888]/x", false),
            ("http://127.0.0.1:8080/x", true),
            ("http://localhost/x", true),
            ("http://LOCALHOST./x", true),
            ("http://10.1.2.3/x", true),
            ("http://172.16.0.1/x", true),
            ("http://192.168.1.1/x", true),
            ("http://169.254.169.254/latest/meta-data", true),
            ("http://100.100.100.200/x", true),
            ("http://[::1]/x", true),
            ("http://[fd00::1]/x", true),
            ("http://[fe80::1]/x", true),
            ("http://[::ffff:10.0.0.1]/x", true),
            ("http://0.0.0.0/x", true),
        ];
        for (url, internal) in cases {
            assert_eq!(is_internal(&url.parse().unwrap()), internal, "{url}");
        }
    }

    #[test]
    fn content_ranges_parse() {
        let table = [
            ("bytes 100-199/200", Some((Some(100), Some(200)))),
            ("bytes 0-0/*", Some((Some(0), None))),
            ("bytes */4096", Some((None, Some(4096)))),
            ("bytes=0-1/2", None),
            ("items 0-1/2", None),
            ("bytes x-1/2", None),
        ];
        for (value, want) in table {
            assert_eq!(content_range(value), want, "{value}");
        }
    }

    #[test]
    fn only_json_zip_and_compressed_json_pass_the_sniff() {
        let dir = tempfile::tempdir().unwrap();
        let gz = |b: &[u8]| {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        };
        let table: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
            ("records.jsonl", b"{\"id\": \"X\"}\n".to_vec(), None),
            ("array.json", b"  [ {} ]".to_vec(), None),
            ("bom.json", "\u{feff}{}".as_bytes().to_vec(), None),
            ("records.jsonl.gz", gz(b"{\"id\": \"X\"}\n"), None),
            ("all.zip", b"PK\x03\x04 the import reads it".to_vec(), None),
            ("empty.json", vec![], Some("empty")),
            ("page.html", b"<!DOCTYPE html><html>".to_vec(), Some("not JSON")),
            ("page.html.gz", gz(b"<html>Service Unavailable"), Some("not JSON")),
            (
                "bad.gz",
                vec![0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7],
                Some("not readable"),
            ),
            ("blank.gz", gz(b"   \n"), Some("no content")),
        ];
        for (name, bytes, want) in table {
            let path = dir.path().join(name);
            fs::write(&path, &bytes).unwrap();
            match (sniff(&path, &Limits::default()), want) {
                (Ok(()), None) => {}
                (Err(e), Some(part)) => assert!(e.contains(part), "{name}: {e}"),
                (got, want) => panic!("{name}: {got:?}, want {want:?}"),
            }
        }
    }

    fn shared(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/vulndb")
            .join(name)
    }

    /// File sources: imported once, then unchanged until the file changes;
    /// a corrupt file keeps the generation in force and is the source's error.
    #[tokio::test]
    async fn file_sources_import_when_they_change() {
        let data = tempfile::tempdir().unwrap();
        let mirror = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(data.path());
        let npm = mirror.path().join("npm.osv.jsonl.gz");
        let alpine = mirror.path().join("alpine.osv.jsonl.gz");
        fs::copy(shared("npm.osv.jsonl.gz"), &npm).unwrap();
        fs::copy(shared("alpine.osv.jsonl.gz"), &alpine).unwrap();
        let urls: Vec<String> = [&npm, &alpine]
            .iter()
            .map(|p| reqwest::Url::from_file_path(p).unwrap().to_string())
            .collect();
        let options = UpdateOptions::default();
        let run = || db.update(&urls, &options, Arc::new(crate::NoProgress));
        let first = run().await.unwrap();
        assert_eq!(first.failed(), 0, "{first:?}");
        let generation = db.status().unwrap().unwrap().generation;
        assert_eq!(db.status().unwrap().unwrap().records(), 467 + 2469);
        let second = run().await.unwrap();
        assert!(second.import.is_none(), "nothing changed: no import");
        assert!(second.sources.iter().all(|s| s.result == Outcome::Unchanged));
        assert_eq!(db.status().unwrap().unwrap().generation, generation);

        // A truncated gzip: the import refuses it, the other source's new
        // version still goes in, and npm keeps its records.
        let whole = fs::read(shared("npm.osv.jsonl.gz")).unwrap();
        fs::write(&npm, &whole[..whole.len() / 2]).unwrap();
        fs::copy(shared("sample.osv.jsonl"), &alpine).unwrap();
        let third = run().await.unwrap();
        assert_eq!(third.sources[0].result, Outcome::Failed);
        assert_eq!(third.sources[1].result, Outcome::Imported);
        let status = db.status().unwrap().unwrap();
        assert_eq!(status.generation, generation + 1);
        let npm_view = &db.source_views(&urls, unix_now()).unwrap()[0];
        assert_eq!(npm_view.records, Some(467), "the previous npm records stay in force");
        assert!(npm_view.last_error.is_some(), "{npm_view:?}");
        assert!(db.update_state().unwrap().updated_at.is_some());
        assert!(!db.update_state().unwrap().last_run_ok);
    }
}
