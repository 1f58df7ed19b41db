//! Replication: pulls from upstream registries here, and (`push.rs`)
//! pushes from here to remote ones (issue 22).
//!
//! A run of a rule lists the upstream's repositories (a glob source) and
//! tags, and for each matching tag whose upstream digest differs from the
//! local tag's: checks the rule's `require_signed_by` keys against the
//! upstream's cosign signatures (tag and bundle forms, through
//! `registry-client`), then copies the manifest (an index whole, with its
//! children), its blobs (linked or mounted when held here, else streamed
//! through the same verified upload path a client's push takes, so a blob
//! whose bytes do not hash to its digest is never stored), and its
//! `.sig` tag and referrers. Manifests are committed by
//! [`crate::manifests::commit`], the push's own path: audit record and
//! `MANIFEST_PUSH`/`TAG_PUSH` events in the transaction, then the scan on
//! push and the promotion policies. Each import's provenance is stored and
//! audited; a finished run writes its record, its audit record and
//! `REPLICATION_COMPLETED` or `REPLICATION_FAILED` in one transaction.
//!
//! One run at a time per rule: a run claims its rule in the database
//! (`running_since` and `claimed_by`, a lease renewed per tag and blob and
//! while it waits for a turn), so two replicas or two requests never run
//! one rule at once; a run that finds its claim taken (its lease ran out)
//! stops. `serve` starts due rules every
//! [`TICK`].

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use portcullis_meta::{now_ms, ReplicationProvenance, ReplicationRule, ReplicationRun, UpstreamRegistry};
use portcullis_oci::{Digest, Manifest, Reference, RepositoryName};
use portcullis_registry_client::{Access, ClientError, FetchedManifest, RegistryClient};
use portcullis_sign::{signature_tag, PublicKey};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::access::Actor;
use crate::{keys, Registry, RegistryError};

mod push;
pub(crate) use push::push_queue;

/// How often `serve` looks for due rules.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// A run's claim on its rule lapses when not renewed for this long (a
/// replica that died mid-run), so the rule runs again.
pub(crate) const LEASE_MS: i64 = 10 * 60 * 1000;
/// Bounds on what one run reads from an upstream.
const MAX_REPOSITORIES: usize = 1_000;
const MAX_TAGS: usize = 10_000;
const MAX_REFERRERS: usize = 32;
/// Nesting of indexes followed (as `reach.rs` bounds it).
const MAX_DEPTH: usize = 8;
/// Runs that copy at once, whatever their rules (a run started beyond
/// them waits for a turn, holding its rule).
pub(crate) const RUNS_AT_ONCE: usize = 2;
/// Entries kept per list in a run's record.
const MAX_ITEMS: usize = 1_000;

/// One tag a run copied, skipped or refused.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RunItem {
    /// The repository on the other registry (the upstream one of a pull,
    /// the remote one a push sends to).
    repository: String,
    tag: String,
    /// The manifest's digest, when it was read.
    digest: Option<String>,
    /// The repository here (written by a pull, read by a push).
    local_repository: String,
    /// Why it was skipped or refused.
    reason: Option<String>,
    /// The id of the key whose signature verified (`require_signed_by`).
    verified_key: Option<String>,
}

#[derive(Default)]
struct Outcome {
    copied: Vec<RunItem>,
    skipped: Vec<RunItem>,
    refused: Vec<RunItem>,
    bytes: u64,
    /// Something could not be copied for another reason than the rule's
    /// own (a digest mismatch, an unreachable upstream).
    errors: usize,
    /// The local repositories the run concerned (for its events).
    repositories: BTreeSet<String>,
}

impl Outcome {
    fn push(list: &mut Vec<RunItem>, item: RunItem) {
        if list.len() < MAX_ITEMS {
            list.push(item);
        }
    }
}

/// Why a tag was not copied.
enum Refusal {
    /// The rule's own requirement (a signature): the run still completes.
    Policy(String),
    /// Something went wrong: the run fails.
    Error(String),
}

impl From<RegistryError> for Refusal {
    fn from(e: RegistryError) -> Refusal {
        Refusal::Error(e.to_string())
    }
}

impl From<ClientError> for Refusal {
    fn from(e: ClientError) -> Refusal {
        Refusal::Error(e.to_string())
    }
}

impl From<portcullis_meta::MetaError> for Refusal {
    fn from(e: portcullis_meta::MetaError) -> Refusal {
        Refusal::Error(RegistryError::from(e).to_string())
    }
}

/// Whether a source names several repositories (a glob).
pub(crate) fn is_glob(source: &str) -> bool {
    portcullis_policy::is_repository_glob(source)
}

/// The source as a matcher over repository names: `*` stays within one
/// path segment, `**` crosses them.
pub(crate) fn source_matcher(source: &str) -> Result<globset::GlobMatcher, String> {
    portcullis_policy::repository_matcher(source).map_err(|e| e.to_string())
}

/// The repository an image goes to on the other side: the target itself
/// when it names a repository (a `/` in it) and the source is one
/// repository; else `<target>/<source repository>`. Pulls write it here,
/// pushes to the remote registry.
pub(crate) fn local_repository(source: &str, target: &str, upstream: &str) -> Result<RepositoryName, String> {
    let name = if target.contains('/') && !is_glob(source) {
        target.to_string()
    } else {
        format!("{target}/{upstream}")
    };
    name.parse()
        .map_err(|e| format!("{name} is not a repository name here: {e}"))
}

/// Tags that travel with an image, not on their own.
fn is_attachment_tag(tag: &str) -> bool {
    portcullis_policy::is_attachment_tag(tag)
}

impl Registry {
    /// A client for `repository` on the upstream `r`, with its password
    /// opened; `Err` says why not (never with the password).
    pub(crate) fn upstream_client(&self, r: &UpstreamRegistry, repository: &str) -> Result<RegistryClient, String> {
        let (scheme, host) = r
            .url
            .split_once("://")
            .ok_or_else(|| format!("registry {}: the URL has no scheme", r.name))?;
        let https = scheme.eq_ignore_ascii_case("https");
        let password = match &r.sealed_password {
            None => String::new(),
            Some(s) => keys::unseal_registry_password(&self.kek, &r.name, s).ok_or_else(|| {
                format!(
                    "registry {}: its password does not open with this server's key-encryption key; set it again",
                    r.name
                )
            })?,
        };
        let access = Access {
            creds: r.username.as_ref().map(|u| format!("{u}:{password}")),
            tls_verify: https,
            ca_pem: r.ca_pem.clone(),
            accept_invalid_certs: https && !r.tls_verify,
        };
        RegistryClient::new(host.trim_end_matches('/'), repository, &access).map_err(|e| e.to_string())
    }

    /// `GET /v2/` of an upstream with its credentials.
    pub(crate) async fn test_upstream(&self, r: &UpstreamRegistry) -> Result<(), String> {
        let client = self.upstream_client(r, "")?;
        client.ping().await.map_err(|e| e.to_string())
    }

    /// Claims `rule` and starts a run of it in the background; the run's id.
    /// `Conflict` while another run holds the rule.
    pub(crate) async fn start_replication(
        self: &Arc<Self>,
        rule: ReplicationRule,
        cause: &str,
        actor: Actor,
    ) -> Result<String, RegistryError> {
        let now = now_ms();
        let run = ReplicationRun {
            id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
            rule_id: rule.id.clone(),
            cause: cause.to_string(),
            started_at: now,
            status: "running".into(),
            ..ReplicationRun::default()
        };
        if !self
            .meta
            .claim_replication_rule(&rule.id, &run.id, now, LEASE_MS)
            .await?
        {
            return Err(RegistryError::Conflict(format!(
                "replication rule {} is running; one run at a time",
                rule.name
            )));
        }
        if let Err(e) = self.meta.start_replication_run(&run).await {
            let _ = self.meta.release_replication_claim(&rule.id, &run.id).await;
            return Err(e.into());
        }
        let id = run.id.clone();
        let reg = self.clone();
        tokio::spawn(async move { reg.run_replication(rule, run, actor).await });
        Ok(id)
    }

    async fn run_replication(self: Arc<Self>, rule: ReplicationRule, run: ReplicationRun, actor: Actor) {
        let _permit = self.run_permit(&rule.id, &run.id).await;
        let mut out = Outcome::default();
        let result = if rule.direction == "push" {
            self.push_everything(&rule, &run.id, &mut out).await
        } else {
            self.replicate(&rule, &run.id, &actor, &mut out).await
        };
        self.finish_run(&rule, run, &actor, out, result).await;
    }

    /// A turn to copy: at most [`RUNS_AT_ONCE`] runs copy at once, the
    /// others wait, renewing their claim meanwhile so it does not lapse
    /// (and let a second run of the rule start) while they queue.
    async fn run_permit(&self, rule_id: &str, run_id: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let acquire = self.replication_runs.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                permit = &mut acquire => return permit.ok(),
                _ = tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 4)) => {
                    let _ = self.meta.renew_replication_claim(rule_id, run_id, now_ms()).await;
                }
            }
        }
    }

    /// Renews the run's claim on its rule: `Err` when the run no longer
    /// holds it (its lease ran out and another run took over), so it stops
    /// instead of running beside the other. A database that can't answer
    /// is not taken for a lost claim.
    async fn still_holds(&self, rule_id: &str, run_id: &str) -> Result<(), String> {
        match self.meta.renew_replication_claim(rule_id, run_id, now_ms()).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("stopped: the run lost its claim on the rule (its lease ran out and another run took it)".into())
            }
            Err(e) => {
                tracing::warn!(rule = rule_id, run = run_id, error = %e, "renewing a replication claim failed");
                Ok(())
            }
        }
    }

    /// Records a finished run (pull or push): its record, audit record and
    /// `REPLICATION_*` events in one transaction, releasing the rule.
    async fn finish_run(
        &self,
        rule: &ReplicationRule,
        mut run: ReplicationRun,
        actor: &Actor,
        out: Outcome,
        result: Result<(), String>,
    ) {
        let failed = result.is_err() || out.errors > 0;
        run.status = if failed { "failed" } else { "completed" }.into();
        run.error = result.err();
        let list = |v: &Vec<RunItem>| serde_json::to_string(v).expect("json");
        run.copied = list(&out.copied);
        run.skipped = list(&out.skipped);
        run.refused = list(&out.refused);
        run.bytes = out.bytes as i64;
        let summary = json!({
            "rule_id": rule.id, "rule": rule.name, "run_id": run.id, "registry": rule.registry,
            "direction": rule.direction,
            "status": run.status, "copied": out.copied.len(), "skipped": out.skipped.len(),
            "refused": out.refused.len(), "bytes": out.bytes, "error": run.error,
        });
        let mut event = actor.event("replication.run").detail(summary.to_string());
        if failed {
            event.result = "failed".into();
        }
        let kind = if failed {
            "REPLICATION_FAILED"
        } else {
            "REPLICATION_COMPLETED"
        };
        let scopes: Vec<String> = if out.repositories.is_empty() {
            // Nothing reached: the event goes to the hooks of the local
            // side, the target of a pull, the source's namespace of a push.
            vec![if rule.direction == "push" {
                format!("{}/", crate::access::namespace_of(&rule.source))
            } else if rule.target.contains('/') {
                rule.target.clone()
            } else {
                format!("{}/", rule.target)
            }]
        } else {
            out.repositories.iter().cloned().collect()
        };
        event.outbox = scopes
            .iter()
            .map(|repo| {
                let about = crate::webhooks::About {
                    repository: repo,
                    ..Default::default()
                };
                self.event(kind, Some(actor), about, json!({ "replication": summary }))
            })
            .collect();
        if let Err(e) = self.meta.finish_replication_run(&run, &event).await {
            tracing::error!(rule = %rule.name, run = %run.id, error = %e, "replication run not recorded");
        }
        self.dispatcher.wake.notify_one();
        tracing::info!(
            log = "replication",
            event = kind,
            rule = %rule.name,
            run = %run.id,
            copied = out.copied.len(),
            skipped = out.skipped.len(),
            refused = out.refused.len(),
            bytes = out.bytes,
            error = run.error.as_deref().unwrap_or(""),
            "replication run finished"
        );
    }

    /// The run itself; `Err` when it could not even list what to copy.
    async fn replicate(
        self: &Arc<Self>,
        rule: &ReplicationRule,
        run_id: &str,
        actor: &Actor,
        out: &mut Outcome,
    ) -> Result<(), String> {
        let upstream = self
            .meta
            .upstream_registry(&rule.registry)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("registry {} is gone", rule.registry))?;
        let mut keys: Vec<PublicKey> = rule
            .require_keys
            .iter()
            .map(|pem| PublicKey::from_pem(pem).map_err(|e| format!("require_signed_by: {e}")))
            .collect::<Result<_, _>>()?;
        // Accounts and teams sign with the keys registered to them now,
        // found as pull rules and promotions find them; a signer gone or
        // re-created since the rule was saved refuses every image.
        let by = &rule.require_signers;
        let named_signers = !by.accounts.is_empty() || !by.teams.is_empty();
        let mut signers_refuse = None;
        if named_signers {
            match self
                .signers_keys(by, Some(rule.updated_at))
                .await
                .map_err(|e| e.to_string())?
            {
                Ok(theirs) => keys.extend(theirs),
                Err(why) => signers_refuse = Some(format!("{} ({why})", crate::pull::signers_text(by))),
            }
        }
        let signatures = Signatures {
            required: named_signers || !rule.require_keys.is_empty(),
            refuse: signers_refuse,
        };
        let tag_patterns =
            portcullis_policy::parse_patterns(&rule.tags, "replication rule").map_err(|e| e.to_string())?;
        let repositories = if is_glob(&rule.source) {
            let matcher = source_matcher(&rule.source)?;
            let catalog = self
                .upstream_client(&upstream, "")?
                .catalog(MAX_REPOSITORIES)
                .await
                .map_err(|e| e.to_string())?;
            catalog.into_iter().filter(|r| matcher.is_match(r)).collect()
        } else {
            vec![rule.source.clone()]
        };
        for repository in repositories {
            let local = local_repository(&rule.source, &rule.target, &repository)?;
            out.repositories.insert(local.to_string());
            let client = self.upstream_client(&upstream, &repository)?;
            let tags = match client.tags(MAX_TAGS).await {
                Ok(t) => t,
                Err(e) if !is_glob(&rule.source) => return Err(e.to_string()),
                Err(e) => {
                    out.errors += 1;
                    Outcome::push(
                        &mut out.refused,
                        RunItem {
                            repository: repository.clone(),
                            tag: String::new(),
                            digest: None,
                            local_repository: local.to_string(),
                            reason: Some(format!("listing its tags: {e}")),
                            verified_key: None,
                        },
                    );
                    continue;
                }
            };
            let mut wanted: Vec<String> = tags
                .into_iter()
                .filter(|t| !is_attachment_tag(t) && tag_patterns.iter().any(|p| p.matches(t)))
                .collect();
            wanted.sort();
            for tag in wanted {
                self.still_holds(&rule.id, run_id).await?;
                let mut item = RunItem {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    digest: None,
                    local_repository: local.to_string(),
                    reason: None,
                    verified_key: None,
                };
                let ctx = TagCopy {
                    upstream: &upstream,
                    client: &client,
                    rule,
                    run_id,
                    actor,
                    local: &local,
                    keys: &keys,
                    signatures: &signatures,
                };
                match self.replicate_tag(&ctx, &mut item, out).await {
                    Ok(true) => Outcome::push(&mut out.copied, item),
                    Ok(false) => Outcome::push(&mut out.skipped, item),
                    Err(Refusal::Policy(why)) => {
                        item.reason = Some(why);
                        Outcome::push(&mut out.refused, item);
                    }
                    Err(Refusal::Error(why)) => {
                        out.errors += 1;
                        item.reason = Some(why);
                        Outcome::push(&mut out.refused, item);
                    }
                }
            }
        }
        Ok(())
    }

    /// One tag: `Ok(true)` copied, `Ok(false)` skipped (unchanged).
    async fn replicate_tag(
        self: &Arc<Self>,
        ctx: &TagCopy<'_>,
        item: &mut RunItem,
        out: &mut Outcome,
    ) -> Result<bool, Refusal> {
        let fetched = ctx.client.manifest(&item.tag).await?;
        let digest = fetched.digest.clone();
        item.digest = Some(digest.to_string());
        let local_tag = self
            .meta
            .get_manifest(ctx.local.as_str(), &Reference::Tag(item.tag.clone()))
            .await?;
        match local_tag {
            Some(m) if m.digest == digest.as_str() => {
                item.reason = Some("unchanged".into());
                return Ok(false);
            }
            // Moved upstream, immutable here: nothing to download.
            Some(m) => {
                if let Some(rule) = self.meta.tag_immutable_by(ctx.local.as_str(), &item.tag).await? {
                    return Err(Refusal::Policy(format!(
                        "conflict: the upstream tag moved to {digest}, but {}:{} is immutable ({rule}) and names {}",
                        ctx.local, item.tag, m.digest
                    )));
                }
            }
            None => {}
        }
        if let Some(why) = &ctx.signatures.refuse {
            return Err(Refusal::Policy(format!("require_signed_by: {why}")));
        }
        if ctx.signatures.required && ctx.keys.is_empty() {
            return Err(Refusal::Policy(
                "require_signed_by: no current key belongs to the signers it names".into(),
            ));
        }
        if ctx.signatures.required {
            let verdict = ctx.client.verify_signatures(&digest, ctx.keys).await?;
            match verdict.verified.first() {
                Some((key, form)) => {
                    tracing::debug!(key = %key, form = form.name(), "upstream signature verified");
                    item.verified_key = Some(key.clone());
                }
                None => {
                    let why = verdict.refusal(ctx.keys.len()).unwrap_or_default();
                    return Err(Refusal::Policy(format!("require_signed_by: {why}")));
                }
            }
        }
        let provenance = json!({
            "registry": ctx.upstream.name, "upstream_repository": item.repository, "tag": item.tag,
            "digest": digest.as_str(), "verified_key": item.verified_key, "rule": ctx.rule.name,
            "rule_id": ctx.rule.id, "run_id": ctx.run_id,
        });
        let detail = format!("provenance={provenance}");
        out.bytes += self
            .copy_manifest(ctx, fetched, vec![item.tag.clone()], &detail, 0)
            .await?;
        self.meta
            .record_replication_provenance(&ReplicationProvenance {
                repo: ctx.local.to_string(),
                tag: item.tag.clone(),
                digest: digest.to_string(),
                registry: ctx.upstream.name.clone(),
                upstream_repository: item.repository.clone(),
                upstream_tag: item.tag.clone(),
                upstream_digest: digest.to_string(),
                verified_key: item.verified_key.clone(),
                rule_id: ctx.rule.id.clone(),
                run_id: ctx.run_id.to_string(),
                replicated_at: now_ms(),
            })
            .await?;
        // Signatures and other referrers travel with the image; one that
        // fails to copy fails the tag's record, not the image already in.
        let attached = format!("attached to {digest} provenance={provenance}");
        // Only what is evidence about this image travels with it, never
        // what the upstream merely lists there: a `.sig` that is a cosign
        // signature manifest (and no local one is replaced), and referrers
        // that are artifacts (no index, nothing runnable) whose subject is
        // this image. Anything else would be an image no rule checked.
        let sig_tag = signature_tag(&digest);
        let local_sig = self
            .meta
            .get_manifest(ctx.local.as_str(), &Reference::Tag(sig_tag.clone()))
            .await?;
        if local_sig.is_none() {
            if let Some(sig) = ctx.client.manifest_if_exists(&sig_tag).await? {
                if portcullis_sign::is_signature_manifest(&sig.bytes) {
                    out.bytes += self.copy_manifest(ctx, sig, vec![sig_tag], &attached, 0).await?;
                }
            }
        }
        let referrers = ctx.client.referrers(&digest, None).await?;
        for r in referrers.iter().take(MAX_REFERRERS) {
            let Some(d) = r["digest"].as_str() else { continue };
            let d: Digest = d.parse().map_err(|e| Refusal::Error(format!("referrer {d}: {e}")))?;
            if self
                .meta
                .get_manifest(ctx.local.as_str(), &Reference::Digest(d.clone()))
                .await?
                .is_some()
            {
                continue;
            }
            let m = ctx.client.manifest(d.as_str()).await?;
            if !is_evidence_about(&m, &digest) {
                continue;
            }
            out.bytes += self.copy_manifest(ctx, m, Vec::new(), &attached, 0).await?;
        }
        Ok(true)
    }

    /// Copies a manifest, what it needs first (children, blobs), then the
    /// manifest through the push's path; the bytes downloaded.
    fn copy_manifest<'a>(
        self: &'a Arc<Self>,
        ctx: &'a TagCopy<'a>,
        fetched: FetchedManifest,
        tags: Vec<String>,
        detail: &'a str,
        depth: usize,
    ) -> BoxFuture<'a, Result<u64, Refusal>> {
        async move {
            if depth > MAX_DEPTH {
                return Err(Refusal::Error(format!("indexes nested deeper than {MAX_DEPTH}")));
            }
            let manifest = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())
                .map_err(|e| Refusal::Error(format!("manifest {}: {e}", fetched.digest)))?;
            let mut bytes = 0;
            for child in manifest.required_manifests() {
                if self
                    .meta
                    .get_manifest(ctx.local.as_str(), &Reference::Digest(child.clone()))
                    .await?
                    .is_some()
                {
                    continue;
                }
                let m = ctx.client.manifest(child.as_str()).await?;
                bytes += self.copy_manifest(ctx, m, Vec::new(), detail, depth + 1).await?;
            }
            for blob in manifest.required_blobs() {
                // The size the manifest declares bounds what is read.
                let declared = manifest
                    .config
                    .iter()
                    .chain(&manifest.layers)
                    .filter(|d| &d.digest == blob)
                    .map(|d| d.size)
                    .max()
                    .unwrap_or(0);
                bytes += self.copy_blob(ctx, blob, declared).await?;
            }
            let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            let event = ctx.actor.event("replication.import").detail(detail);
            let committed = crate::manifests::commit(
                self,
                ctx.actor,
                ctx.local,
                &manifest,
                &fetched.bytes,
                &fetched.digest,
                tag_refs,
                event,
            )
            .await;
            match committed {
                // The target's own rules (an immutable tag that would
                // move, a promotion-only repository): a conflict to
                // record, not a failure of the run.
                Err(RegistryError::Denied(why)) => Err(Refusal::Policy(format!("conflict: {why}"))),
                Err(e) => Err(e.into()),
                Ok(()) => Ok(bytes),
            }
        }
        .boxed()
    }

    /// Makes `digest` readable in the local repository: already linked,
    /// mounted from a repository that holds it, or downloaded through the
    /// verified upload path (its digest checked before it is stored).
    async fn copy_blob(&self, ctx: &TagCopy<'_>, digest: &Digest, declared: u64) -> Result<u64, Refusal> {
        let repo = ctx.local.as_str();
        if self.meta.blob_in_repo(repo, digest).await?.is_some() {
            return Ok(0);
        }
        // Linked only from repositories under the rule's own target: a
        // digest an upstream names proves nothing about having the bytes,
        // so linking from anywhere would hand a private repository's layer
        // to whoever reads the mirror.
        let target = ctx.rule.target.as_str();
        let under_target = |r: &str| r == target || r.strip_prefix(target).is_some_and(|rest| rest.starts_with('/'));
        for from in self.meta.repositories_with_blob(digest, 64).await? {
            if under_target(&from) && self.meta.mount_blob(repo, &from, digest).await?.is_some() {
                return Ok(0);
            }
        }
        // A large blob takes a while: the run says it is alive first.
        self.still_holds(&ctx.rule.id, ctx.run_id)
            .await
            .map_err(Refusal::Error)?;
        let id = self
            .store
            .start_upload(digest.algorithm())
            .await
            .map_err(|e| Refusal::Error(format!("blob {digest}: {e}")))?;
        let stored = async {
            // An upstream that sends more than the manifest declares is
            // cut off there: an endless body can't fill the disk before the
            // digest check would refuse it.
            let mut read = 0u64;
            let stream = futures_util::StreamExt::map(ctx.client.blob_stream(digest).await?, move |chunk| {
                let chunk = chunk?;
                read += chunk.len() as u64;
                if read > declared {
                    return Err(std::io::Error::other(format!(
                        "the upstream sent more than the {declared} bytes the manifest declares"
                    )));
                }
                Ok(chunk)
            });
            self.store
                .append(id, None, Box::pin(stream))
                .await
                .map_err(|e| Refusal::Error(format!("blob {digest}: {e}")))?;
            let verified = self.store.verify_upload(id, digest).await.map_err(|e| match e {
                portcullis_store::StoreError::DigestMismatch { actual, .. } => Refusal::Error(format!(
                    "blob {digest}: the upstream served bytes that hash to {actual}: digest mismatch, not stored"
                )),
                e => Refusal::Error(format!("blob {digest}: {e}")),
            })?;
            let size = verified.size;
            self.meta
                .insert_blob(repo, digest, size, || self.store.publish(verified))
                .await?;
            Ok::<u64, Refusal>(size)
        }
        .await;
        if stored.is_err() {
            let _ = self.store.cancel_upload(id).await;
        }
        stored
    }
}

/// What copying one tag needs.
struct TagCopy<'a> {
    upstream: &'a UpstreamRegistry,
    client: &'a RegistryClient,
    rule: &'a ReplicationRule,
    run_id: &'a str,
    actor: &'a Actor,
    local: &'a RepositoryName,
    keys: &'a [PublicKey],
    signatures: &'a Signatures,
}

/// What `require_signed_by` asks of every image of a run.
struct Signatures {
    /// A signature under one of the run's keys is required.
    required: bool,
    /// Why every image is refused (a named signer gone or re-created).
    refuse: Option<String>,
}

/// `serve`'s scheduler: every [`TICK`], starts each enabled rule (a pull,
/// or a full push) whose interval has passed since its last run and that
/// no run holds.
pub(crate) async fn schedule(weak: Weak<Registry>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(reg) = weak.upgrade() else { return };
        let due = match reg.meta.due_replication_rules(now_ms(), LEASE_MS).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "replication schedule: reading due rules failed");
                continue;
            }
        };
        for rule in due {
            let actor = Actor {
                name: rule.created_by.clone(),
                ..Actor::default()
            };
            match reg.start_replication(rule, "schedule", actor).await {
                Ok(_) | Err(RegistryError::Conflict(_)) => {}
                Err(e) => tracing::warn!(error = %e, "replication schedule: a run did not start"),
            }
        }
    }
}

/// Whether an upstream referrer is evidence about `image`: an artifact
/// (every layer a signature, attestation or SBOM type: it cannot run, and
/// it is no index) whose own `subject` is `image`.
fn is_evidence_about(fetched: &FetchedManifest, image: &Digest) -> bool {
    Manifest::parse(&fetched.bytes, fetched.media_type.as_deref()).is_ok_and(|m| {
        m.kind() == portcullis_oci::ManifestKind::Artifact && m.subject.as_ref().is_some_and(|s| &s.digest == image)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only evidence about the image travels with it: what an upstream
    /// lists under `.sig` or as a referrer is copied only when it is a
    /// signature manifest, or an artifact whose subject is the image.
    #[test]
    fn only_evidence_about_the_image_is_copied_with_it() {
        let image = Digest::sha256_of(b"image");
        let other = Digest::sha256_of(b"other");
        let blob = Digest::sha256_of(b"blob");
        let manifest = |layer_type: &str, subject: Option<&Digest>| {
            let mut m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob.as_str(), "size": 2},
                "layers": [{"mediaType": layer_type, "digest": blob.as_str(), "size": 2}],
            });
            if let Some(s) = subject {
                m["subject"] = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": s.as_str(), "size": 2});
            }
            let bytes = serde_json::to_vec(&m).unwrap();
            FetchedManifest {
                digest: Digest::sha256_of(&bytes),
                bytes,
                media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            }
        };
        let index = {
            let bytes = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other.as_str(), "size": 2}],
            }))
            .unwrap();
            FetchedManifest {
                digest: Digest::sha256_of(&bytes),
                bytes,
                media_type: Some("application/vnd.oci.image.index.v1+json".into()),
            }
        };
        let runnable = "application/vnd.oci.image.layer.v1.tar+gzip";
        let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json";
        // (what, manifest, as a .sig, as a referrer of `image`)
        let table = [
            (
                "a cosign signature",
                manifest(portcullis_sign::SIMPLE_SIGNING, None),
                true,
                false,
            ),
            ("a runnable image", manifest(runnable, None), false, false),
            (
                "a runnable image naming the image",
                manifest(runnable, Some(&image)),
                false,
                false,
            ),
            ("a bundle about the image", manifest(bundle, Some(&image)), false, true),
            (
                "a bundle about another image",
                manifest(bundle, Some(&other)),
                false,
                false,
            ),
            ("an index", index, false, false),
        ];
        for (what, m, sig, referrer) in table {
            assert_eq!(portcullis_sign::is_signature_manifest(&m.bytes), sig, "{what} as .sig");
            assert_eq!(is_evidence_about(&m, &image), referrer, "{what} as a referrer");
        }
    }

    #[test]
    fn local_repository_table() {
        let table = [
            (
                "library/alpine",
                "mirror",
                "library/alpine",
                Some("mirror/library/alpine"),
            ),
            (
                "library/alpine",
                "mirror/alpine",
                "library/alpine",
                Some("mirror/alpine"),
            ),
            ("library/*", "mirror", "library/busybox", Some("mirror/library/busybox")),
            // A glob source keeps each repository's name under the target.
            (
                "library/*",
                "mirror/x",
                "library/busybox",
                Some("mirror/x/library/busybox"),
            ),
            ("a", "Bad Target", "a", None),
        ];
        for (source, target, upstream, want) in table {
            let got = local_repository(source, target, upstream).ok().map(|n| n.to_string());
            assert_eq!(got.as_deref(), want, "{source} {target} {upstream}");
        }
    }

    #[test]
    fn source_globs_stay_within_segments() {
        let m = source_matcher("library/*").unwrap();
        assert!(m.is_match("library/alpine"));
        assert!(!m.is_match("library/a/b"));
        assert!(!m.is_match("other/alpine"));
        assert!(source_matcher("**/alpine").unwrap().is_match("a/b/alpine"));
        assert!(is_glob("library/*") && !is_glob("library/alpine"));
    }

    #[test]
    fn attachment_tags_are_not_replicated_on_their_own() {
        let hex = "a".repeat(64);
        assert!(is_attachment_tag(&format!("sha256-{hex}.sig")));
        assert!(is_attachment_tag(&format!("sha256-{hex}")));
        assert!(!is_attachment_tag("sha256-latest"));
        assert!(!is_attachment_tag("v1"));
    }
}
