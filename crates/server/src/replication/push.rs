//! Push replication: local tags a push rule selects go to a remote
//! registry (a disaster-recovery or edge site), byte for byte.
//!
//! Events queue the pushes: `meta` writes a row in the push queue for
//! every enabled push rule that selects the tag of a `TAG_PUSH` or
//! `PROMOTION` event, in the event's own transaction (so a committed
//! promotion never lacks its push, whatever happens to the process after).
//! [`push_queue`] looks for rules with due pushes every [`TICK`], claims
//! the rule (the same claim as a run's: one run of a rule at a time) and
//! sends what is queued, as a run with cause `event`. A push that fails
//! (the remote down, refusing) is tried again later, backing off, until
//! [`MAX_PUSH_AGE_MS`]; one sent is removed unless a newer event queued its
//! tag again meanwhile. `POST …/run` pushes everything the rule selects.
//!
//! An image goes whole: an index with its children, then the blobs each
//! manifest needs (a `HEAD` first: what the remote has is not sent again;
//! else mounted from a repository this run saw holding it, else streamed
//! from the blob file), then the manifest's own bytes. What is evidence
//! about it goes with it: its cosign `.sig` and `.att` tags and its
//! referrers (artifacts whose subject it is), through the referrers tag
//! schema on a remote without the referrers API.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use portcullis_meta::{now_ms, PushJob, ReplicationRule, ReplicationRun, StoredManifest, UpstreamRegistry};
use portcullis_oci::{Digest, Manifest, Reference};
use portcullis_registry_client::RegistryClient;
use portcullis_sign::signature_tag;

use super::{is_attachment_tag, is_glob, local_repository, source_matcher, Outcome, Refusal, RunItem};
use super::{LEASE_MS, MAX_DEPTH, MAX_REFERRERS, MAX_REPOSITORIES, MAX_TAGS, TICK};
use crate::access::Actor;
use crate::{Registry, RegistryError};

/// Queued pushes one run sends at most (the rest wait for the next).
const JOBS_PER_RUN: i64 = 200;
/// The first retry of a failed push waits this long, each next one three
/// times longer, at most [`MAX_RETRY_MS`].
const RETRY_BASE_MS: i64 = 5_000;
const MAX_RETRY_MS: i64 = 10 * 60 * 1000;
/// A push still failing this long after its event is given up (and
/// recorded so in its run).
const MAX_PUSH_AGE_MS: i64 = 2 * 86_400 * 1000;

/// How long after `attempts` failed attempts a push is tried again.
fn retry_delay_ms(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    RETRY_BASE_MS
        .saturating_mul(3i64.saturating_pow(exponent))
        .min(MAX_RETRY_MS)
}

/// What a push run keeps from one tag to the next.
struct Sender<'a> {
    remote: &'a UpstreamRegistry,
    /// One client per remote repository (each holds its own token).
    clients: HashMap<String, RegistryClient>,
    /// A remote repository known to hold each blob: where a mount may come from.
    holders: HashMap<Digest, String>,
}

impl Registry {
    /// `POST …/run` of a push rule: every local tag it selects.
    pub(super) async fn push_everything(
        self: &Arc<Self>,
        rule: &ReplicationRule,
        run_id: &str,
        out: &mut Outcome,
    ) -> Result<(), String> {
        let patterns = portcullis_policy::parse_patterns(&rule.tags, "replication rule").map_err(|e| e.to_string())?;
        let repositories = if is_glob(&rule.source) {
            let matcher = source_matcher(&rule.source)?;
            let mut found = Vec::new();
            let mut last: Option<String> = None;
            // Pages of the local catalog, bounded like an upstream's.
            for _ in 0..MAX_REPOSITORIES {
                let page = self
                    .meta
                    .catalog(last.as_deref(), 1_000)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(end) = page.last().cloned() else { break };
                found.extend(page.into_iter().filter(|r| matcher.is_match(r)));
                if found.len() >= MAX_REPOSITORIES {
                    found.truncate(MAX_REPOSITORIES);
                    break;
                }
                last = Some(end);
            }
            found
        } else {
            vec![rule.source.clone()]
        };
        let mut wanted = Vec::new();
        for repo in repositories {
            let mut last: Option<String> = None;
            loop {
                let page = self
                    .meta
                    .list_tags(&repo, last.as_deref(), 1_000)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(end) = page.last().cloned() else { break };
                wanted.extend(
                    page.into_iter()
                        .filter(|t| !is_attachment_tag(t) && patterns.iter().any(|p| p.matches(t)))
                        .map(|t| (repo.clone(), t)),
                );
                if wanted.len() >= MAX_TAGS {
                    wanted.truncate(MAX_TAGS);
                    break;
                }
                last = Some(end);
            }
        }
        self.push_tags(rule, run_id, &wanted, out).await.map(|_| ())
    }

    /// Pushes each `(local repository, tag)`; for each, `None` when it was
    /// sent or had nothing to send, else why it failed (to try again).
    async fn push_tags(
        self: &Arc<Self>,
        rule: &ReplicationRule,
        run_id: &str,
        wanted: &[(String, String)],
        out: &mut Outcome,
    ) -> Result<Vec<Option<String>>, String> {
        let remote = self
            .meta
            .upstream_registry(&rule.registry)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("registry {} is gone", rule.registry))?;
        let mut sender = Sender {
            remote: &remote,
            clients: HashMap::new(),
            holders: HashMap::new(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        for (local, tag) in wanted {
            if let Err(why) = self.still_holds(&rule.id, run_id).await {
                // The rest are left for the run that holds the rule now.
                out.errors += 1;
                results.resize(wanted.len(), Some(why));
                break;
            }
            out.repositories.insert(local.clone());
            let mut item = RunItem {
                repository: String::new(),
                tag: tag.clone(),
                digest: None,
                local_repository: local.clone(),
                reason: None,
                verified_key: None,
            };
            let sent = match local_repository(&rule.source, &rule.target, local) {
                Err(e) => Err(Refusal::Error(e)),
                Ok(remote_repo) => {
                    item.repository = remote_repo.to_string();
                    self.push_tag(&mut sender, remote_repo.as_str(), local, tag, &mut item, out)
                        .await
                }
            };
            match sent {
                Ok(true) => {
                    results.push(None);
                    Outcome::push(&mut out.copied, item);
                }
                Ok(false) => {
                    results.push(None);
                    Outcome::push(&mut out.skipped, item);
                }
                Err(Refusal::Policy(why)) => {
                    results.push(None);
                    item.reason = Some(why);
                    Outcome::push(&mut out.refused, item);
                }
                Err(Refusal::Error(why)) => {
                    out.errors += 1;
                    results.push(Some(why.clone()));
                    item.reason = Some(why);
                    Outcome::push(&mut out.refused, item);
                }
            }
        }
        Ok(results)
    }

    /// One tag: `Ok(true)` when something was sent, `Ok(false)` when the
    /// remote had it all already (or the tag is gone here).
    async fn push_tag(
        &self,
        sender: &mut Sender<'_>,
        remote_repo: &str,
        local: &str,
        tag: &str,
        item: &mut RunItem,
        out: &mut Outcome,
    ) -> Result<bool, Refusal> {
        let Some(manifest) = self.meta.get_manifest(local, &Reference::Tag(tag.to_string())).await? else {
            item.reason = Some("the tag is no longer here".into());
            return Ok(false);
        };
        let digest: Digest = manifest
            .digest
            .parse()
            .map_err(|e| Refusal::Error(format!("stored digest {}: {e}", manifest.digest)))?;
        item.digest = Some(manifest.digest.clone());
        if !sender.clients.contains_key(remote_repo) {
            let client = self
                .upstream_client(sender.remote, remote_repo)
                .map_err(Refusal::Error)?;
            sender.clients.insert(remote_repo.to_string(), client);
        }
        let Sender { clients, holders, .. } = sender;
        let client = &clients[remote_repo];
        // An attachment pushed on its own (a signature made after the
        // image was sent) goes where its image already is.
        if let Some(hex) = portcullis_policy::attachment_subject_hex(tag) {
            // Only what the name promises travels as an attachment: a cosign
            // `.sig`/`.att`/`.sbom` tag holding signatures, attestations or
            // SBOMs. Anything else under such a name (a runnable image, a
            // referrers-schema tag pushed by hand) is not selected by the
            // rule's tags, so it is not sent.
            let evidence = portcullis_oci::cosign_tag_subject(tag).is_some()
                && Manifest::parse(&manifest.content, Some(&manifest.media_type))
                    .is_ok_and(|m| m.kind() == portcullis_oci::ManifestKind::Artifact);
            if !evidence {
                return Err(Refusal::Policy(format!(
                    "{tag} is named like an attachment but is not a cosign signature, attestation or SBOM; \
                     the rule's tags do not select it"
                )));
            }
            let subject = format!("sha256:{hex}");
            if remote_digest(client, &subject).await?.is_none() {
                item.reason = Some(format!("its image {subject} is not on the remote"));
                return Ok(false);
            }
            if remote_digest(client, tag).await?.as_ref() == Some(&digest) {
                item.reason = Some("unchanged".into());
                return Ok(false);
            }
            out.bytes += self.send_manifest(client, holders, local, &manifest, tag, 0).await?;
            return Ok(true);
        }
        let mut sent = false;
        if remote_digest(client, tag).await?.as_ref() != Some(&digest) {
            out.bytes += self.send_manifest(client, holders, local, &manifest, tag, 0).await?;
            sent = true;
        }
        let (bytes, attached) = self.send_attachments(client, holders, local, &digest).await?;
        out.bytes += bytes;
        if !sent && !attached {
            item.reason = Some("unchanged".into());
        }
        Ok(sent || attached)
    }

    /// Sends the evidence about `image` the remote lacks: its cosign
    /// `.sig` and `.att` tags and its referrers. The bytes uploaded, and
    /// whether anything was sent.
    async fn send_attachments(
        &self,
        client: &RegistryClient,
        holders: &mut HashMap<Digest, String>,
        local: &str,
        image: &Digest,
    ) -> Result<(u64, bool), Refusal> {
        let (mut bytes, mut any) = (0, false);
        for tag in [
            signature_tag(image),
            portcullis_sign::attestation::attestation_tag(image),
        ] {
            let Some(m) = self.meta.get_manifest(local, &Reference::Tag(tag.clone())).await? else {
                continue;
            };
            if remote_digest(client, &tag)
                .await?
                .is_some_and(|d| d.as_str() == m.digest)
            {
                continue;
            }
            bytes += self.send_manifest(client, holders, local, &m, &tag, 0).await?;
            any = true;
        }
        let referrers = self.meta.referrers(local, image, None).await?;
        for r in referrers.iter().take(MAX_REFERRERS) {
            if remote_digest(client, &r.digest).await?.is_some() {
                continue;
            }
            let d: Digest = r
                .digest
                .parse()
                .map_err(|e| Refusal::Error(format!("referrer {}: {e}", r.digest)))?;
            let Some(m) = self.meta.get_manifest(local, &Reference::Digest(d)).await? else {
                continue; // deleted meanwhile
            };
            let parsed = Manifest::parse(&m.content, Some(&m.media_type))
                .map_err(|e| Refusal::Error(format!("referrer {}: {e}", m.digest)))?;
            for blob in parsed.required_blobs() {
                bytes += self.send_blob(client, holders, blob).await?;
            }
            if m.media_type == portcullis_oci::media_type::OCI_MANIFEST {
                // Listed under the referrers tag schema where the remote
                // has no referrers API.
                let artifact_type = parsed
                    .referrer_artifact_type()
                    .unwrap_or(m.media_type.as_str())
                    .to_string();
                client.put_referrer(&m.content, image, &artifact_type).await?;
            } else {
                client.put_manifest(&m.digest, &m.media_type, &m.content).await?;
            }
            any = true;
        }
        Ok((bytes, any))
    }

    /// Sends a manifest under `reference` (a tag, or its digest), after
    /// what it needs: its children (an index's, by digest) and its blobs.
    /// The bytes uploaded.
    fn send_manifest<'a>(
        &'a self,
        client: &'a RegistryClient,
        holders: &'a mut HashMap<Digest, String>,
        local: &'a str,
        stored: &'a StoredManifest,
        reference: &'a str,
        depth: usize,
    ) -> BoxFuture<'a, Result<u64, Refusal>> {
        async move {
            if depth > MAX_DEPTH {
                return Err(Refusal::Error(format!("indexes nested deeper than {MAX_DEPTH}")));
            }
            let manifest = Manifest::parse(&stored.content, Some(&stored.media_type))
                .map_err(|e| Refusal::Error(format!("manifest {}: {e}", stored.digest)))?;
            let mut bytes = 0;
            for child in manifest.required_manifests() {
                if remote_digest(client, child.as_str()).await?.is_some() {
                    continue;
                }
                let m = self
                    .meta
                    .get_manifest(local, &Reference::Digest(child.clone()))
                    .await?
                    .ok_or_else(|| Refusal::Error(format!("{child}, listed by {}, is not here", stored.digest)))?;
                bytes += self
                    .send_manifest(client, holders, local, &m, child.as_str(), depth + 1)
                    .await?;
            }
            for blob in manifest.required_blobs() {
                bytes += self.send_blob(client, holders, blob).await?;
            }
            client
                .put_manifest(reference, &stored.media_type, &stored.content)
                .await?;
            Ok(bytes)
        }
        .boxed()
    }

    /// Makes blob `digest` present in the client's remote repository: there
    /// already (a `HEAD`), mounted from another remote repository this run
    /// saw holding it, or uploaded from the blob file. The bytes uploaded.
    async fn send_blob(
        &self,
        client: &RegistryClient,
        holders: &mut HashMap<Digest, String>,
        digest: &Digest,
    ) -> Result<u64, Refusal> {
        let repo = client.repository().to_string();
        if client.blob_exists(digest).await? {
            holders.insert(digest.clone(), repo);
            return Ok(0);
        }
        let size = self
            .store
            .blob_size(digest)
            .await
            .map_err(|e| Refusal::Error(format!("blob {digest}: {e}")))?
            .ok_or_else(|| Refusal::Error(format!("blob {digest} is not stored here")))?;
        let from = holders.get(digest).filter(|r| **r != repo).cloned();
        let path = self.store.blob_path(digest);
        let mounted = client.send_blob_file(digest, &path, size, from.as_deref()).await?;
        holders.insert(digest.clone(), repo);
        Ok(if mounted { 0 } else { size })
    }

    /// Sends a push rule's queued pushes as one run (the rule claimed by
    /// the caller, the run started): each sent one leaves the queue, each
    /// failed one waits for its retry.
    async fn run_queued_pushes(self: Arc<Self>, rule: ReplicationRule, run: ReplicationRun) {
        let _permit = self.run_permit(&rule.id, &run.id).await;
        let actor = Actor {
            name: rule.created_by.clone(),
            ..Actor::default()
        };
        let mut out = Outcome::default();
        let result = self.push_claimed(&rule, &run.id, &mut out).await;
        self.finish_run(&rule, run, &actor, out, result).await;
    }

    async fn push_claimed(
        self: &Arc<Self>,
        rule: &ReplicationRule,
        run_id: &str,
        out: &mut Outcome,
    ) -> Result<(), String> {
        let now = now_ms();
        let jobs = self
            .meta
            .claim_push_jobs(&rule.id, run_id, now, JOBS_PER_RUN)
            .await
            .map_err(|e| e.to_string())?;
        let wanted: Vec<(String, String)> = jobs.iter().map(|j| (j.repo.clone(), j.tag.clone())).collect();
        let results = match self.push_tags(rule, run_id, &wanted, out).await {
            Ok(r) => r,
            Err(why) => vec![Some(why); jobs.len()],
        };
        for (job, failure) in jobs.iter().zip(results) {
            let recorded = match failure {
                None => self.meta.push_job_done(job).await,
                Some(why) if now - job.created_at > MAX_PUSH_AGE_MS => {
                    tracing::error!(rule = %rule.name, repository = %job.repo, tag = %job.tag, error = %why,
                        attempts = job.attempts, "push replication given up");
                    Outcome::push(&mut out.refused, gave_up(job, &why));
                    self.meta.push_job_done(job).await
                }
                Some(why) => {
                    self.meta
                        .push_job_failed(job, now_ms() + retry_delay_ms(job.attempts), &why)
                        .await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(rule = %rule.name, error = %e, "push replication: the queue was not updated");
            }
        }
        Ok(())
    }
}

/// The run record's entry for a push given up.
fn gave_up(job: &PushJob, why: &str) -> RunItem {
    RunItem {
        repository: String::new(),
        tag: job.tag.clone(),
        digest: Some(job.digest.clone()),
        local_repository: job.repo.clone(),
        reason: Some(format!(
            "given up after {} attempts over two days; the last: {why}",
            job.attempts
        )),
        verified_key: None,
    }
}

/// The digest the remote has under `reference`, `None` when it has none.
async fn remote_digest(client: &RegistryClient, reference: &str) -> Result<Option<Digest>, Refusal> {
    match client.manifest_head(reference).await {
        Ok(head) => Ok(Some(head.digest)),
        Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `serve`'s push worker: every [`TICK`], claims each push rule with
/// queued pushes due and sends them as a run.
pub(crate) async fn push_queue(weak: Weak<Registry>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(reg) = weak.upgrade() else { return };
        let now = now_ms();
        let rules = match reg.meta.rules_with_due_pushes(now, LEASE_MS).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "push replication: reading the queue failed");
                continue;
            }
        };
        for rule in rules {
            let run = ReplicationRun {
                id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
                rule_id: rule.id.clone(),
                cause: "event".into(),
                started_at: now,
                status: "running".into(),
                ..ReplicationRun::default()
            };
            match reg.meta.claim_replication_rule(&rule.id, &run.id, now, LEASE_MS).await {
                Ok(true) => {}
                Ok(false) => continue, // another run holds it; its turn comes
                Err(e) => {
                    tracing::warn!(error = %e, "push replication: claiming a rule failed");
                    continue;
                }
            }
            if let Err(e) = reg.meta.start_replication_run(&run).await {
                tracing::warn!(error = %RegistryError::from(e), "push replication: a run did not start");
                let _ = reg.meta.release_replication_claim(&rule.id, &run.id).await;
                continue;
            }
            tokio::spawn(reg.clone().run_queued_pushes(rule, run));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay_ms(1), 5_000);
        assert_eq!(retry_delay_ms(2), 15_000);
        assert_eq!(retry_delay_ms(3), 45_000);
        assert_eq!(retry_delay_ms(10), MAX_RETRY_MS);
        assert_eq!(retry_delay_ms(1_000), MAX_RETRY_MS);
    }
}
