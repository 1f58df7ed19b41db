//! Pull records on their way to the audit trail. A pull appends its record
//! under a short lock and wakes the writer only when a batch is full, so
//! the hot path makes no cross-thread hand-off per request; the writer
//! also drains every `FLUSH_EVERY`. Nothing is dropped: past `limit`
//! waiting records a pull waits for a free slot (backpressure), a failed
//! write is retried, and shutdown drains what is left.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use portcullis_meta::AuditEvent;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, Semaphore};

use crate::Registry;

/// Records per transaction, and the queue length that wakes the writer early.
const BATCH: usize = 1000;
/// How long a record may wait when pulls are few.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

pub(crate) struct PullAuditQueue {
    waiting: Mutex<Vec<AuditEvent>>,
    /// One permit per record that may still be queued.
    slots: Semaphore,
    /// Records queued and not yet committed (the `pull_audit_queue_depth` metric).
    depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    full: Notify,
    /// The queue length that wakes the writer: a batch, or the limit if smaller.
    wake_at: usize,
    /// Serialises draining (the writer and a shutdown flush).
    writing: tokio::sync::Mutex<()>,
}

impl PullAuditQueue {
    pub(crate) fn new(limit: usize, depth: Gauge<i64, std::sync::atomic::AtomicI64>) -> PullAuditQueue {
        PullAuditQueue {
            waiting: Mutex::new(Vec::with_capacity(BATCH)),
            slots: Semaphore::new(limit.max(1)),
            depth,
            full: Notify::new(),
            wake_at: BATCH.min(limit.max(1)),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Queues `event`; waits only while `limit` records are already waiting.
    pub(crate) async fn push(&self, event: AuditEvent) {
        match self.slots.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return,
        }
        let n = {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            waiting.push(event);
            waiting.len()
        };
        self.depth.inc();
        if n == self.wake_at {
            self.full.notify_one();
        }
    }

    /// Writes everything queued so far; retries until the database takes it.
    pub(crate) async fn drain(&self, registry: &Registry) {
        let _writing = self.writing.lock().await;
        let taken = std::mem::take(&mut *self.waiting.lock().expect("not poisoned"));
        for chunk in taken.chunks(BATCH) {
            let mut backoff = Duration::from_millis(100);
            while let Err(e) = registry.meta.audit(chunk).await {
                tracing::error!(error = %e, records = chunk.len(), "writing pull audit records failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            self.depth.dec_by(chunk.len() as i64);
            self.slots.add_permits(chunk.len());
        }
    }
}

/// Drains the queue while the registry lives.
pub(crate) async fn writer(registry: Weak<Registry>, queue: Arc<PullAuditQueue>) {
    loop {
        tokio::select! {
            _ = queue.full.notified() => {}
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        let Some(registry) = registry.upgrade() else {
            return;
        };
        queue.drain(&registry).await;
    }
}
