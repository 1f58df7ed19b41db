//! A disconnected registry kept current from a signed database artifact
//! (issue 20 §4, air-gapped transfer): `serve` pulls `vulndb_pull` (a
//! repository in this registry, or an internal mirror, where an operator
//! carried what `db push` wrote) every `vulndb_pull_interval`, sooner
//! after a failure, through `VulnDb::pull`: the signature on the
//! manifest's digest must verify under one of `vulndb_pull_keys`, the
//! bytes must match their digests, and only a manifest other than the one
//! in force is imported. The scanner's database watcher loads the new
//! generation and re-matches, as after `db import`. The schedule is read
//! from `pull.json`, so a restart or a second replica does not pull again
//! before it is due, and the pull lock keeps two from running at once.

use std::sync::{Arc, Weak};
use std::time::Duration;

use portcullis_meta::AuditEvent;
use portcullis_vulndb::{unix_now, NoProgress, PullOptions, PullOutcome, VulnDbError};
use serde_json::json;

use crate::Registry;

/// Where `serve` pulls the database from, and how often.
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// `HOST/REPO[:TAG|@DIGEST]`; `None` turns the puller off.
    pub reference: Option<String>,
    pub interval: Duration,
    /// How to reach it, and the keys a copy must be signed by.
    pub options: PullOptions,
}

impl Default for PullSettings {
    fn default() -> Self {
        PullSettings {
            reference: None,
            interval: Duration::from_secs(6 * 3600),
            options: PullOptions {
                access: portcullis_vulndb::Access {
                    creds: None,
                    tls_verify: true,
                    ..Default::default()
                },
                keys: Vec::new(),
                limits: portcullis_vulndb::Limits::default(),
            },
        }
    }
}

/// After a failed pull the next comes this soon (or at the interval, if shorter).
const RETRY: Duration = Duration::from_secs(10 * 60);

impl Registry {
    /// Whether the database comes from `vulndb_pull` (and so not from sources).
    pub(crate) fn pulls_vulndb(&self) -> bool {
        self.puller.reference.is_some()
    }

    /// The pull part of `GET /api/v1/vulndb`: what is configured, and the
    /// last pull's outcome as `pull.json` remembers it.
    pub(crate) async fn vulndb_pull_status(&self) -> Result<serde_json::Value, crate::RegistryError> {
        let settings = &self.puller;
        let db = self.scanner.vulndb.clone();
        let view = tokio::task::spawn_blocking(move || db.pull_view(unix_now()))
            .await
            .map_err(|e| crate::RegistryError::Internal(e.to_string()))?
            .map_err(|e| crate::RegistryError::Internal(e.to_string()))?;
        if settings.reference.is_none() && view.is_none() {
            return Ok(serde_json::Value::Null);
        }
        Ok(json!({
            "configured": settings.reference,
            "interval_seconds": settings.interval.as_secs(),
            "keys": settings.options.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
            "last": view,
        }))
    }

    /// One scheduled pull when it is due; how long until the next look.
    async fn pull_when_due(&self, reference: &str) -> Duration {
        let settings = &self.puller;
        let interval = settings.interval;
        let db = self.scanner.vulndb.clone();
        let state = match tokio::task::spawn_blocking(move || db.pull_state()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the vulnerability database pull state");
                return RETRY.min(interval);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the vulnerability database pull state");
                return RETRY.min(interval);
            }
        };
        let wait = if state.last_error.is_none() {
            interval
        } else {
            interval.min(RETRY)
        };
        // A pull of another reference than the configuration's is not this one's.
        let due = match state.reference.as_deref() {
            Some(r) if r == reference => state.last_attempt.map_or(0, |t| t.saturating_add(wait.as_secs())),
            _ => 0,
        };
        let now = unix_now();
        if due > now {
            return Duration::from_secs(due - now);
        }
        let started = std::time::Instant::now();
        let db = self.scanner.vulndb.clone();
        let result = db.pull(reference, &settings.options, Arc::new(NoProgress)).await;
        let ms = started.elapsed().as_millis() as u64;
        let event = match &result {
            Ok(report) if report.result == PullOutcome::Unchanged => {
                tracing::debug!(reference, digest = %report.digest, ms, "vulnerability database pull: unchanged");
                None
            }
            Ok(report) => {
                let generation = report.import.as_ref().map(|i| i.generation);
                tracing::info!(log = "vulndb_pull", reference, digest = %report.digest, key = %report.key_id, generation, ms,
                    "vulnerability database pulled");
                let mut ev = AuditEvent::ok("system", "vulndb.pull");
                ev.detail = Some(format!(
                    "generation {} from {reference}@{}, signed by key {} ({} form)",
                    generation.unwrap_or_default(),
                    report.digest,
                    report.key_id,
                    report.form
                ));
                Some(ev)
            }
            Err(VulnDbError::PullBusy(_)) => None,
            Err(e) => {
                tracing::warn!(reference, error = %e, "vulnerability database pull failed");
                // A change of state is audited, not every retry of the same failure.
                (state.last_error.as_deref() != Some(e.to_string().as_str())).then(|| {
                    let mut ev = AuditEvent::ok("system", "vulndb.pull");
                    ev.result = "failed".into();
                    ev.detail = Some(e.to_string());
                    ev
                })
            }
        };
        if let Some(ev) = event {
            if let Err(e) = self.meta.audit(&[ev]).await {
                tracing::warn!(error = %e, "auditing a vulnerability database pull");
            }
        }
        match result {
            Ok(_) => interval,
            Err(_) => interval.min(RETRY),
        }
    }
}

/// `serve`'s puller: runs until the registry is dropped, when a reference is configured.
pub(crate) async fn run(weak: Weak<Registry>) {
    loop {
        let Some(reg) = weak.upgrade() else { return };
        let Some(reference) = reg.puller.reference.clone() else {
            return;
        };
        let wait = reg.pull_when_due(&reference).await;
        drop(reg);
        tokio::time::sleep(wait).await;
    }
}
