//! The vulnerability database kept current without a person: `serve`
//! updates it from its sources every `vulndb_update_interval` (sooner
//! after a failure, at once when the sources change), through
//! `VulnDb::update` (conditional, resumable downloads; one import). The
//! scanner's database watcher loads the new generation and re-matches, as
//! after `db import`. The schedule is read from `sources.json`, so a
//! restart or a second replica does not update again before it is due,
//! and the update lock keeps two from running at once.
//!
//! Also here: the sources API and the database's age, which freshness
//! rules (promotion `database_age`, pull `max_database_age`) are judged by.

use std::sync::{Arc, Weak};
use std::time::Duration;

use portcullis_meta::AuditEvent;
use portcullis_vulndb::{unix_now, NoProgress, UpdateOptions, VulnDbError};
use serde_json::json;

use crate::access::Actor;
use crate::{Registry, RegistryError};

/// Where and how often `serve` updates the database.
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    /// The configuration's `vulndb_sources` (an API-set list overrides it).
    pub sources: Vec<String>,
    pub interval: Duration,
    pub options: UpdateOptions,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        UpdateSettings {
            sources: Vec::new(),
            interval: Duration::from_secs(6 * 3600),
            options: UpdateOptions::default(),
        }
    }
}

/// After a failed update the next comes this soon (or at the interval, if shorter).
const RETRY: Duration = Duration::from_secs(10 * 60);
/// Without sources, how often to look whether some were configured elsewhere.
const IDLE: Duration = Duration::from_secs(60);

pub(crate) struct Updater {
    pub(crate) settings: UpdateSettings,
    /// Notified when the sources change: update now.
    wake: Arc<tokio::sync::Notify>,
    /// Set with that notice: the next look updates whether due or not.
    now: std::sync::atomic::AtomicBool,
}

impl Updater {
    pub(crate) fn new(settings: UpdateSettings) -> Updater {
        Updater {
            settings,
            wake: Arc::new(tokio::sync::Notify::new()),
            now: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

fn internal(e: impl ToString) -> RegistryError {
    RegistryError::Internal(e.to_string())
}

impl Registry {
    /// Runs `f` over the database files off the async threads.
    async fn with_vulndb<T: Send + 'static>(
        &self,
        f: impl FnOnce(&portcullis_vulndb::VulnDb) -> Result<T, VulnDbError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let db = self.scanner.vulndb.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(internal)?
            .map_err(|e| match e {
                VulnDbError::BadSource { .. } => RegistryError::Invalid(e.to_string()),
                e => internal(e),
            })
    }

    /// How long ago the database in force was imported or found current by
    /// an update in which every source succeeded; `None` without a database.
    pub(crate) async fn database_age(&self) -> Result<Option<Duration>, RegistryError> {
        let fresh = self.with_vulndb(|db| db.fresh_at()).await?;
        Ok(fresh.map(|t| Duration::from_secs(unix_now().saturating_sub(t))))
    }

    /// `GET /api/v1/vulndb/sources`: the sources in force and where the list comes from.
    pub async fn vulndb_sources(&self) -> Result<serde_json::Value, RegistryError> {
        let configuration = self.updater.settings.sources.clone();
        let (sources, from) = self.with_vulndb(move |db| db.effective_sources(&configuration)).await?;
        let warnings: Vec<String> = sources
            .iter()
            .filter(|u| portcullis_vulndb::parse_source(u).is_ok_and(|s| s.is_plain_http()))
            .map(|u| format!("{u} is fetched over plain http: nothing proves its content is the publisher's"))
            .collect();
        Ok(json!({
            "sources": sources,
            "from": from,
            "configuration": self.updater.settings.sources,
            "interval_seconds": self.updater.settings.interval.as_secs(),
            "warnings": warnings,
        }))
    }

    /// `PUT /api/v1/vulndb/sources`: sets the list (`None`: back to the
    /// configuration's), audits the change, and updates at once.
    pub async fn set_vulndb_sources(
        &self,
        actor: &Actor,
        sources: Option<Vec<String>>,
    ) -> Result<serde_json::Value, RegistryError> {
        if self.pulls_vulndb() && sources.as_ref().is_some_and(|l| !l.is_empty()) {
            // An import from the sources would replace the pulled database
            // and the next pull would replace theirs.
            return Err(RegistryError::Invalid(
                "this registry pulls its database from vulndb_pull: sources cannot be set too".into(),
            ));
        }
        let detail = match &sources {
            Some(list) => format!("{} sources: {}", list.len(), list.join(" ")),
            None => "the configuration's sources".to_string(),
        };
        let mut ev = actor.event("vulndb.sources.update");
        match self.with_vulndb(move |db| db.set_configured_sources(sources)).await {
            Ok(_) => ev.detail = Some(detail),
            Err(e) => {
                ev.result = "failed".into();
                ev.detail = Some(e.to_string());
                self.meta.audit(&[ev]).await?;
                return Err(e);
            }
        }
        self.meta.audit(&[ev]).await?;
        self.updater.now.store(true, std::sync::atomic::Ordering::Relaxed);
        self.updater.wake.notify_one();
        self.vulndb_sources().await
    }

    /// The update part of `GET /api/v1/vulndb`: each source in force with
    /// its records, last success and error and age, and the database's age.
    pub(crate) async fn vulndb_update_status(&self) -> Result<serde_json::Value, RegistryError> {
        let configuration = self.updater.settings.sources.clone();
        let now = unix_now();
        let (views, from, state, fresh) = self
            .with_vulndb(move |db| {
                let (urls, from) = db.effective_sources(&configuration)?;
                Ok((db.source_views(&urls, now)?, from, db.update_state()?, db.fresh_at()?))
            })
            .await?;
        let at = |t: Option<u64>| t.map(portcullis_vulndb::rfc3339);
        Ok(json!({
            "sources": views,
            "from": from,
            "interval_seconds": self.updater.settings.interval.as_secs(),
            "last_run": at(state.last_run),
            "last_run_ok": state.last_run.map(|_| state.last_run_ok),
            "updated_at": at(state.updated_at),
            "fresh_at": at(fresh),
            "database_age_seconds": fresh.map(|t| now.saturating_sub(t)),
        }))
    }

    /// One scheduled update when it is due; how long until the next look.
    async fn update_when_due(&self) -> Duration {
        let asked = self.updater.now.swap(false, std::sync::atomic::Ordering::Relaxed);
        if self.pulls_vulndb() {
            // The database comes from `vulndb_pull` (`vulndb_pull.rs`).
            return IDLE;
        }
        let configuration = self.updater.settings.sources.clone();
        let plan = self
            .with_vulndb(move |db| Ok((db.effective_sources(&configuration)?.0, db.update_state()?)))
            .await;
        let (sources, state) = match plan {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the vulnerability database sources");
                return RETRY;
            }
        };
        if sources.is_empty() {
            return IDLE;
        }
        let interval = self.updater.settings.interval;
        let wait = if state.last_run_ok {
            interval
        } else {
            interval.min(RETRY)
        };
        let due = state.last_run.map_or(0, |t| t.saturating_add(wait.as_secs()));
        let now = unix_now();
        if due > now && !asked {
            return Duration::from_secs(due - now);
        }
        let started = std::time::Instant::now();
        let db = self.scanner.vulndb.clone();
        let result = db
            .update(&sources, &self.updater.settings.options, Arc::new(NoProgress))
            .await;
        let report = match result {
            Ok(r) => r,
            Err(VulnDbError::UpdateBusy(_)) => return RETRY.min(interval),
            Err(e) => {
                tracing::warn!(error = %e, "updating the vulnerability database");
                return RETRY.min(interval);
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        for s in report.sources.iter().filter(|s| s.error.is_some()) {
            tracing::warn!(source = %s.url, error = s.error.as_deref().unwrap_or(""), "vulnerability database source failed");
        }
        let generation = report.import.as_ref().map(|i| i.generation);
        let failed_sources: Vec<&str> = report
            .sources
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| s.name.as_str())
            .collect();
        tracing::info!(
            log = "vulndb_update",
            sources = report.sources.len(),
            imported = report.sources.len() - report.failed(),
            failed = report.failed(),
            failed_sources = %failed_sources.join(","),
            generation,
            ms,
            "vulnerability database update"
        );
        // A change of state is audited; a run that found nothing new is not.
        if generation.is_some() || report.failed() > 0 {
            let mut ev = AuditEvent::ok("system", "vulndb.update");
            if report.failed() > 0 {
                ev.result = "failed".into();
            }
            let parts: Vec<String> = report
                .sources
                .iter()
                .map(|s| {
                    let result = serde_json::to_value(s.result).ok();
                    let result = result.as_ref().and_then(|v| v.as_str()).unwrap_or("");
                    match &s.error {
                        Some(e) => format!("{}: {result} ({e})", s.name),
                        None => format!("{}: {result}", s.name),
                    }
                })
                .collect();
            let head = generation.map_or("no new generation".to_string(), |g| format!("generation {g}"));
            ev.detail = Some(format!("{head}; {}", parts.join("; ")));
            if let Err(e) = self.meta.audit(&[ev]).await {
                tracing::warn!(error = %e, "auditing a vulnerability database update");
            }
        }
        if report.failed() > 0 {
            interval.min(RETRY)
        } else {
            interval
        }
    }
}

/// `serve`'s updater: runs until the registry is dropped.
pub(crate) async fn run(weak: Weak<Registry>) {
    loop {
        let Some(reg) = weak.upgrade() else { return };
        let wake = reg.updater.wake.clone();
        let wait = reg.update_when_due().await;
        drop(reg);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}
