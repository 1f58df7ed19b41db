//! Prometheus metrics: requests by route and status, latency, bytes moved,
//! uploads in progress, garbage collection runs.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry as PromRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

pub struct Metrics {
    registry: PromRegistry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    bytes_in: Counter,
    bytes_out: Counter,
    uploads_in_progress: Gauge<i64, std::sync::atomic::AtomicI64>,
    gc_runs: Counter,
    gc_removed: Counter<u64, AtomicU64>,
    webhook_deliveries: Family<ResultLabel, Counter>,
    webhook_backlog: Gauge<i64, std::sync::atomic::AtomicI64>,
    webhook_oldest: Gauge<i64, std::sync::atomic::AtomicI64>,
    pub(crate) pull_audit_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = PromRegistry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            // 0.1 ms to ~30 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 3.0, 12,
            ))
        });
        let (bytes_in, bytes_out, gc_runs) = (Counter::default(), Counter::default(), Counter::default());
        let gc_removed = Counter::default();
        let uploads_in_progress = Gauge::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to response headers",
            latency.clone(),
        );
        registry.register(
            "blob_bytes_received",
            "Blob bytes received from clients",
            bytes_in.clone(),
        );
        registry.register("blob_bytes_sent", "Blob bytes sent to clients", bytes_out.clone());
        registry.register(
            "blob_bytes_sent_zero_copy",
            "Blob bytes the kernel sent straight from files (plain HTTP/1)",
            crate::zero_copy::SENT.clone(),
        );
        registry.register(
            "uploads_in_progress",
            "Open upload sessions",
            uploads_in_progress.clone(),
        );
        registry.register("gc_runs", "Garbage collection runs completed", gc_runs.clone());
        registry.register(
            "gc_removed_objects",
            "Manifests, links and blobs removed by garbage collection",
            gc_removed.clone(),
        );
        let webhook_deliveries = Family::<ResultLabel, Counter>::default();
        let (webhook_backlog, webhook_oldest) = (Gauge::default(), Gauge::default());
        registry.register(
            "webhook_delivery_attempts",
            "Webhook delivery attempts by result (delivered, retry, failed)",
            webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook deliveries not yet delivered or given up",
            webhook_backlog.clone(),
        );
        registry.register(
            "webhook_oldest_undelivered_seconds",
            "Age of the oldest webhook delivery not yet finished",
            webhook_oldest.clone(),
        );
        let pull_audit_depth = Gauge::default();
        registry.register(
            "pull_audit_queue_depth",
            "Pull audit records queued and not yet committed",
            pull_audit_depth.clone(),
        );
        Metrics {
            pull_audit_depth,
            webhook_deliveries,
            webhook_backlog,
            webhook_oldest,
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            uploads_in_progress,
            gc_runs,
            gc_removed,
        }
    }

    pub fn observe_request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.inc_by(n);
    }

    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.inc_by(n);
    }

    pub fn webhook_delivery(&self, result: &str) {
        self.webhook_deliveries
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn set_webhook_backlog(&self, depth: i64, oldest_ms: i64) {
        self.webhook_backlog.set(depth);
        self.webhook_oldest.set(oldest_ms / 1000);
    }

    pub fn set_uploads_in_progress(&self, n: i64) {
        self.uploads_in_progress.set(n);
    }

    pub fn gc_finished(&self, removed: u64) {
        self.gc_runs.inc();
        self.gc_removed.inc_by(removed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
