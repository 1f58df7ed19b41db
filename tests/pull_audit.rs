//! Pull audit under load, on SQLite and PostgreSQL: with the queue held to
//! 16 records, 2,000 authenticated manifest pulls at 64 at a time each
//! leave exactly one pull record (pulls wait for the writer instead of
//! records being dropped), the chain verifies, and the queue depth is a
//! metric.

mod common;

use common::{backends, TestServer};
use futures_util::StreamExt;
use portcullis_meta::AuditQuery;
use portcullis_server::access::Anonymous;

const PULLS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pull_served_is_recorded_once_under_backpressure() {
    for backend in backends() {
        let s = TestServer::start_tuned(&backend, Anonymous::None, |o| o.access.pull_audit_queue = 16).await;
        let label = s.label();
        let (digest, _) = s.push_image("acme/app", "1", b"{\"a\":1}", &[b"layer"]).await;
        let token = s.admin_registry_token("repository:acme/app:pull").await;
        let client = reqwest::Client::new();
        let url = s.url(&format!("/v2/acme/app/manifests/{digest}"));
        let served = futures_util::stream::iter(0..PULLS)
            .map(|_| {
                let req = client.get(&url).bearer_auth(&token);
                async move { req.send().await.unwrap().status().as_u16() }
            })
            .buffer_unordered(64)
            .filter(|st| std::future::ready(*st == 200))
            .count()
            .await;
        assert_eq!(served, PULLS, "{label}");
        let metrics = common::scrape(&s).await;
        assert!(metrics.contains("portcullis_pull_audit_queue_depth"), "{metrics}");

        s.registry.flush_pull_audit().await;
        let q = AuditQuery {
            action: Some("pull".into()),
            limit: 10 * PULLS as i64,
            ..AuditQuery::default()
        };
        let pulls = s.registry.meta.audit_records(&q).await.unwrap();
        assert_eq!(pulls.len(), PULLS, "{label}: one record per pull served");
        assert!(pulls.iter().all(|p| p.event.digest.as_deref() == Some(digest.as_str())));
        let (_, broken) = s.registry.meta.verify_audit().await.unwrap();
        assert_eq!(broken, None, "{label}");
        let metrics = common::scrape(&s).await;
        assert!(
            metrics.contains("portcullis_pull_audit_queue_depth 0"),
            "{label}: drained"
        );
    }
}
