//! Promotion policies at work: after a push to a source repository, after
//! an image's scan finishes, after a vulnerability database import, and on
//! request (`apply`), each policy of the repository is evaluated over the
//! image's facts (the policy crate decides) and a passing image is copied
//! to the target (the meta crate's one-transaction `promote`). Every
//! evaluation is recorded; an unchanged re-evaluation is not recorded again,
//! so nothing retries in a loop.
//!
//! A promotion is a push into its target: the target's own policies run
//! next, up to `MAX_CHAIN` links.
//!
//! A policy acts with its owner's rights as they are at each run, not as
//! they were when it was saved: without pull on the source, push on the
//! target and (with `sign_as`) the administration of the signing account,
//! it is `suspended` and copies nothing. A promotion with `sign_as` is
//! signed again at later triggers until the target carries a signature by
//! that account's key. A database error is never taken for "nothing to do":
//! it is returned (and logged by the trigger), and nothing is recorded, so
//! the next trigger runs again.

use portcullis_auth::Actions;
use portcullis_meta::{now_ms, AuditEvent, EvaluationOutcome, EvaluationRecord, PromotionCopy, StoredPolicy};
use portcullis_oci::{validate_tag, Digest, Reference};
use portcullis_policy::{CompiledPolicy, ImageFacts, PackageFact, PromotionPolicy};
use serde_json::json;

use crate::access::{Caller, Need, Principal};
use crate::{Registry, RegistryError};

/// What one evaluation decided, as recorded (or, for a dry run, would be).
pub(crate) struct Outcome {
    pub record: EvaluationRecord,
}

/// Promotions one promotion may set off in turn (a cycle of policies ends
/// on its own, as a repeated promotion changes nothing; this bounds a long one).
const MAX_CHAIN: usize = 8;

/// How often promotions whose signing failed are tried again, and for how
/// long after the failure.
const SIGNING_RETRY: std::time::Duration = std::time::Duration::from_secs(60);
const SIGNING_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Held while a promotion's signature is checked and made (signing is rare).
static SIGNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Registry {
    /// The facts of one image (not an index) for the rules; `Ok(Err)` with
    /// the outcome (`pending` or `failed`) when its scan is not usable, `Err`
    /// when the database could not say.
    async fn image_facts(
        &self,
        tag: &str,
        digest: &str,
        needs_scan: bool,
    ) -> Result<Result<ImageFacts, (EvaluationOutcome, String)>, RegistryError> {
        let mut facts = ImageFacts {
            tag: tag.to_string(),
            digest: digest.to_string(),
            ..ImageFacts::default()
        };
        if !needs_scan {
            return Ok(Ok(facts));
        }
        let Some(scan) = self.meta.scan(digest).await? else {
            return Ok(Err((
                EvaluationOutcome::Pending,
                format!("{digest} has not been scanned"),
            )));
        };
        match scan.status.as_str() {
            // Zero findings from no database is not a clean image: wait for
            // a database (its import re-matches and re-runs the policies).
            "done" if scan.db_generation.is_none() => {
                return Ok(Err((
                    EvaluationOutcome::Pending,
                    format!("{digest} was scanned before any vulnerability database was loaded"),
                )))
            }
            "done" => {}
            "failed" => {
                return Ok(Err((
                    EvaluationOutcome::Failed,
                    format!("the scan of {digest} failed: {}", scan.error.unwrap_or_default()),
                )))
            }
            other => {
                return Ok(Err((
                    EvaluationOutcome::Pending,
                    format!("the scan of {digest} is {other}"),
                )))
            }
        }
        facts.counts = scan.counts.map(|n| n.max(0) as u64);
        let sbom = self.meta.scan_sbom(digest).await?;
        let Some(image) = sbom.as_deref().and_then(crate::scanner::sbom_from_bytes) else {
            return Ok(Err((
                EvaluationOutcome::Failed,
                format!("the stored SBOM of {digest} is unreadable"),
            )));
        };
        facts.packages = image
            .components
            .iter()
            .map(|c| PackageFact {
                name: c.package.name.clone(),
                version: c.package.version.clone(),
                license: c.package.license.clone(),
                order: c.package.ecosystem.version_order(),
            })
            .collect();
        Ok(Ok(facts))
    }

    /// Evaluates one policy over `repo`@`digest` (tagged `tag`), and unless
    /// `dry_run` promotes a passing image and records the evaluation.
    pub(crate) async fn run_policy(
        &self,
        stored: &StoredPolicy,
        tag: &str,
        digest: &str,
        dry_run: bool,
    ) -> Result<Outcome, RegistryError> {
        self.run_policy_at(stored, tag, digest, dry_run, 0).await
    }

    /// `run_policy`, `depth` promotions down a chain (build → release →
    /// production): a promotion is a push into its target, so the target's
    /// own policies run next, up to `MAX_CHAIN` links.
    async fn run_policy_at(
        &self,
        stored: &StoredPolicy,
        tag: &str,
        digest: &str,
        dry_run: bool,
        depth: usize,
    ) -> Result<Outcome, RegistryError> {
        let policy: PromotionPolicy =
            serde_json::from_str(&stored.policy).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let compiled = policy
            .compile()
            .map_err(|e| RegistryError::Internal(format!("stored policy {}: {e}", stored.id)))?;
        let mut record = EvaluationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            policy_id: stored.id.clone(),
            repository: stored.repository.clone(),
            tag: Some(tag.to_string()),
            digest: digest.to_string(),
            outcome: EvaluationOutcome::Pending,
            target_tag: None,
            detail: String::new(),
            at: now_ms(),
        };
        if let Some(why) = self.suspension(stored, &policy).await? {
            record.outcome = EvaluationOutcome::Suspended;
            record.detail = json!({"suspended": why}).to_string();
            if !dry_run {
                self.meta.record_evaluation(&record).await?;
            }
            return Ok(Outcome { record });
        }
        let (outcome, detail, passed) = self
            .evaluate(&compiled, &stored.repository, tag, digest, stored.updated_at)
            .await?;
        record.outcome = outcome;
        record.detail = detail.to_string();
        if passed {
            let target_tag = compiled.template.render(tag, digest, now_ms() * 1000);
            record.target_tag = Some(target_tag.clone());
            record.outcome = if dry_run {
                EvaluationOutcome::Passed
            } else {
                match self.promote(stored, &policy, tag, digest, &target_tag).await? {
                    Ok(now) => {
                        // Not only when promoted now: a signature that failed
                        // before is tried again until it is there.
                        let mut signed = None;
                        if let Some(account) = &policy.sign_as {
                            let signature = self.ensure_signed(&policy.target, digest, account).await?;
                            signed = Some(signature["state"] == "signed");
                            record.detail = json!({"rules": detail, "signature": signature}).to_string();
                        }
                        if now {
                            self.attest_promotion(crate::attestations::PromotionRecord {
                                policy_id: &stored.id,
                                policy: &policy,
                                evaluation: &detail,
                                source_repository: &stored.repository,
                                source_tag: tag,
                                digest,
                                target_tag: &target_tag,
                            })
                            .await;
                            tracing::info!(
                                log = "promotion",
                                policy_id = %stored.id,
                                source_repository = %stored.repository,
                                source_tag = %tag,
                                target_repository = %policy.target,
                                target_tag = %target_tag,
                                %digest,
                                signed = signed.unwrap_or(false),
                                sign_as = policy.sign_as.as_deref(),
                                "image promoted"
                            );
                            Box::pin(self.promote_onward(&policy.target, &target_tag, digest, depth + 1)).await;
                        }
                        EvaluationOutcome::Promoted
                    }
                    Err(why) => {
                        record.detail = json!({"rules": detail, "refused": why}).to_string();
                        EvaluationOutcome::Refused
                    }
                }
            };
        }
        if !dry_run {
            // Only "promoted" changes the target; the rest is a record.
            self.meta.record_evaluation(&record).await?;
        }
        Ok(Outcome { record })
    }

    /// Why the policy may not run now, if it may not: its owner must, at
    /// this moment, be able to pull from the source (an administrator can),
    /// push to the target and, with `sign_as`, administer the signing
    /// account, decided by the same `authorize` as a request of theirs.
    /// Grants are revoked and repositories deleted and made again after a
    /// policy is saved. `Err` only when the database could not say.
    async fn suspension(
        &self,
        stored: &StoredPolicy,
        policy: &PromotionPolicy,
    ) -> Result<Option<String>, RegistryError> {
        let Some(owner) = self.meta.account(&stored.owner).await? else {
            return Ok(Some(format!("the policy's owner {} no longer exists", stored.owner)));
        };
        let caller = Caller::Account(Principal::full(owner, None));
        let mut why = Vec::new();
        for (repo, want, verb) in [
            // The right creating the policy took: a demoted administrator's
            // copier stops, even from a repository anyone may pull.
            (stored.repository.as_str(), Actions::ALL, "administer"),
            (policy.target.as_str(), Actions::PUSH, "push to"),
        ] {
            match self.authorize(&caller, Need::Repository(repo, want)).await {
                Ok(()) => {}
                Err(e @ RegistryError::Internal(_)) => return Err(e),
                Err(_) => why.push(format!("its owner {} may not {verb} {repo}", stored.owner)),
            }
        }
        if let Some(account) = &policy.sign_as {
            match self.may_sign_as(&caller, account).await {
                Ok(()) => {}
                Err(e @ RegistryError::Internal(_)) => return Err(e),
                Err(e) => why.push(e.to_string()),
            }
        }
        Ok((!why.is_empty()).then(|| why.join("; ")))
    }

    /// The policy's signature over a promoted `digest` in `repo`, made now
    /// if it is not there yet: state `signed` with the key id, or `failed`
    /// with why (tried again at the next trigger).
    async fn ensure_signed(&self, repo: &str, digest: &str, account: &str) -> Result<serde_json::Value, RegistryError> {
        // Check and sign as one step, so two triggers racing over the same
        // image (a push and an `apply`) add one signature, not two.
        let _one_at_a_time = SIGNING.lock().await;
        let failed = |why: String| json!({"signed_by": account, "state": "failed", "error": why});
        let signed = |key: String| json!({"signed_by": account, "state": "signed", "key_id": key});
        Ok(match self.signed_by_server_key(repo, digest, account).await? {
            Ok(Some(key)) => signed(key),
            // A key that can't sign stays unable: no signature is added.
            Err(why) => failed(why),
            // The promotion stands either way; the record says how signing went.
            Ok(None) => match self.sign_image(repo, digest, account).await {
                Ok(key) => signed(key),
                Err(e) => failed(e.to_string()),
            },
        })
    }

    /// The signature state of a promoted tag whose policy signs, for the
    /// provenance API, as the policy's last run over `digest` left it
    /// (`signed`, or `failed` with why); `pending` before any run signed.
    /// Read from the records, so a read costs no signature check.
    pub(crate) async fn promotion_signature(
        &self,
        digest: &str,
        policy_id: &str,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let policy = self.meta.policy(policy_id).await?;
        let Some(account) = policy.as_ref().and_then(parsed).and_then(|p| p.sign_as) else {
            return Ok(None);
        };
        let recorded = self
            .meta
            .evaluations(Some(policy_id), Some(digest), 20)
            .await?
            .iter()
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
            .map(|d| d["signature"].clone())
            .find(|s| s["signed_by"] == account.as_str());
        Ok(Some(
            recorded.unwrap_or_else(|| json!({"signed_by": account, "state": "pending"})),
        ))
    }

    /// (outcome, detail, passed) of the rules over every image `digest`
    /// stands for: an index passes only if each of its images does. With
    /// `require_provenance`, each image's provenance is judged too (signers
    /// created after `saved_at`, when the policy was last saved, are not
    /// trusted).
    async fn evaluate(
        &self,
        compiled: &CompiledPolicy,
        repo: &str,
        tag: &str,
        digest: &str,
        saved_at: i64,
    ) -> Result<(EvaluationOutcome, serde_json::Value, bool), RegistryError> {
        let needs_scan = compiled.policy.needs_scan();
        let images = self.images_reached_by_digest(repo, digest).await;
        let images = match images {
            Ok(i) => i,
            Err(e @ RegistryError::Internal(_)) => return Err(e),
            Err(e) => return Ok((EvaluationOutcome::Failed, json!({"error": e.to_string()}), false)),
        };
        if images.is_empty() {
            return Ok((
                EvaluationOutcome::Failed,
                json!({"error": "an index without images the scanner can read"}),
                false,
            ));
        }
        let database_age = if compiled.policy.needs_database_age() {
            self.database_age().await?
        } else {
            None
        };
        let mut per_image = Vec::new();
        let mut all_pass = true;
        for image in &images {
            match self.image_facts(tag, image, needs_scan).await? {
                Ok(mut facts) => {
                    facts.database_age = database_age;
                    let e = compiled.evaluate(&facts);
                    let mut entry = json!({"digest": image, "passed": e.passed, "rules": e.rules});
                    let mut passed = e.passed;
                    if let Some(required) = &compiled.policy.require_provenance {
                        let verdict = self.provenance_verdict(repo, image, required, Some(saved_at)).await?;
                        passed &= verdict.is_ok();
                        entry["passed"] = passed.into();
                        entry["provenance"] = match verdict {
                            Ok(key_id) => json!({"passed": true, "key_id": key_id}),
                            Err(why) => json!({"passed": false, "facts": why}),
                        };
                    }
                    all_pass &= passed;
                    per_image.push(entry);
                }
                Err((outcome, why)) => {
                    return Ok((outcome, json!({"digest": image, "reason": why}), false));
                }
            }
        }
        let outcome = if all_pass {
            EvaluationOutcome::Passed
        } else {
            EvaluationOutcome::Failed
        };
        Ok((outcome, json!({"images": per_image}), all_pass))
    }

    /// The copy itself, after the rendered tag is checked (the owner's
    /// rights were, by `suspension`): `Ok(Ok(true))` when promoted now,
    /// `Ok(Ok(false))` when this policy had promoted this image there
    /// already; `Ok(Err)` says why the target refused it; `Err` is the
    /// database failing.
    async fn promote(
        &self,
        stored: &StoredPolicy,
        policy: &PromotionPolicy,
        tag: &str,
        digest: &str,
        target_tag: &str,
    ) -> Result<Result<bool, String>, RegistryError> {
        if validate_tag(target_tag).is_err() {
            return Ok(Err(format!(
                "the template makes {target_tag:?}, which is not a valid tag"
            )));
        }
        if let Some(p) = self.meta.provenance(&policy.target, target_tag).await? {
            if p.digest == digest && p.policy_id == stored.id {
                return Ok(Ok(false)); // promoted before: nothing to do
            }
        }
        let mut event = AuditEvent::ok(&stored.owner, "promotion")
            .repository(&policy.target)
            .digest(digest)
            .detail(format!(
                "policy {}: {}:{tag} -> {}:{target_tag}",
                stored.id, stored.repository, policy.target
            ));
        let promotion = json!({"promotion": {
            "policy_id": stored.id, "source_repository": stored.repository, "source_tag": tag,
            "target_repository": policy.target, "target_tag": target_tag,
        }});
        let owner_actor = crate::access::Actor {
            name: stored.owner.clone(),
            ..Default::default()
        };
        let about = crate::webhooks::About {
            repository: &policy.target,
            digest: Some(digest),
            tag: Some(target_tag),
            media_type: None,
        };
        event.outbox = vec![self.event("PROMOTION", Some(&owner_actor), about, promotion)];
        let copy = PromotionCopy {
            source_repository: &stored.repository,
            source_tag: Some(tag),
            digest,
            target_repository: &policy.target,
            target_tag,
            policy_id: &stored.id,
            copy_referrers: policy.copy_referrers,
        };
        let result = self.meta.promote(&copy, &event).await;
        self.invalidate(&policy.target);
        self.dispatcher.wake.notify_one();
        match result.map_err(RegistryError::from) {
            Ok(now) => Ok(Ok(now)),
            Err(e @ RegistryError::Internal(_)) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// Tries again, once a minute, to sign promotions whose signing failed
    /// in the last day and that nothing has signed since. Only the
    /// signature is retried, over the target tag the promotion made: no
    /// promotion runs again (the source tag may have moved or gone), and a
    /// record is written only when the state changes.
    pub(crate) async fn retry_failed_signings(weak: std::sync::Weak<Registry>) {
        loop {
            tokio::time::sleep(SIGNING_RETRY).await;
            let Some(reg) = weak.upgrade() else { return };
            let since = now_ms() - SIGNING_RETRY_FOR.as_millis() as i64;
            let due = match reg.meta.failed_signings(since, 100).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "listing promotions whose signing failed");
                    continue;
                }
            };
            for (policy_id, _, digest) in due {
                if let Err(e) = reg.sign_again(&policy_id, &digest).await {
                    tracing::warn!(policy = %policy_id, %digest, error = %e, "signing a promotion again");
                }
            }
        }
    }

    /// One retry of [`Registry::retry_failed_signings`].
    async fn sign_again(&self, policy_id: &str, digest: &str) -> Result<(), RegistryError> {
        let Some(latest) = self
            .meta
            .evaluations(Some(policy_id), Some(digest), 1)
            .await?
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let mut detail: serde_json::Value = serde_json::from_str(&latest.detail).unwrap_or_default();
        if latest.outcome != EvaluationOutcome::Promoted || detail["signature"]["state"] != "failed" {
            return Ok(());
        }
        let Some(stored) = self.meta.policy(policy_id).await? else {
            return Ok(());
        };
        let Some(policy) = parsed(&stored).filter(|p| p.enabled) else {
            return Ok(());
        };
        let Some(account) = policy.sign_as.clone() else {
            return Ok(());
        };
        if self.suspension(&stored, &policy).await?.is_some() {
            return Ok(());
        }
        let signature = self.ensure_signed(&policy.target, digest, &account).await?;
        if signature["state"] == detail["signature"]["state"] {
            return Ok(());
        }
        detail["signature"] = signature;
        let record = EvaluationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            detail: detail.to_string(),
            at: now_ms(),
            ..latest
        };
        self.meta.record_evaluation(&record).await?;
        Ok(())
    }

    /// After a push's answer: its tags' policies, one push at a time in the
    /// order they were answered, and only over tags that still name the
    /// pushed digest (a later push of the same tag wins, never an earlier
    /// one whose task ran late).
    pub(crate) async fn promote_pushed(&self, repo: &str, tags: &[String], digest: &Digest) {
        let _turn = self.promoting.lock().await;
        let mut current = Vec::new();
        for tag in tags {
            match self.meta.get_manifest(repo, &Reference::Tag(tag.clone())).await {
                Ok(Some(m)) if m.digest == digest.as_str() => current.push(tag.as_str()),
                Ok(_) => {}
                Err(e) => tracing::warn!(%repo, %tag, error = %e, "reading a pushed tag before its promotion"),
            }
        }
        self.promote_on_push(repo, &current, digest).await;
    }

    /// Runs every enabled policy of `repo` over the tags a push just set.
    pub(crate) async fn promote_on_push(&self, repo: &str, tags: &[&str], digest: &Digest) {
        if tags.is_empty() {
            return;
        }
        let policies = match self.meta.policies(repo).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(%repo, error = %e, "reading promotion policies"),
        };
        for p in policies.iter().filter(|p| enabled(p)) {
            for tag in tags {
                if let Err(e) = self.run_policy(p, tag, digest.as_str(), false).await {
                    tracing::warn!(policy = %p.id, %repo, error = %e, "promotion after a push");
                }
            }
        }
    }

    /// The target's policies over what a promotion just tagged there.
    async fn promote_onward(&self, repo: &str, tag: &str, digest: &str, depth: usize) {
        if depth > MAX_CHAIN {
            return tracing::warn!(%repo, %tag, "promotion chain longer than {MAX_CHAIN} links: stopped");
        }
        let policies = match self.meta.policies(repo).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(%repo, error = %e, "reading promotion policies after a promotion"),
        };
        for p in policies.iter().filter(|p| enabled(p)) {
            if let Err(e) = self.run_policy_at(p, tag, digest, false, depth).await {
                tracing::warn!(policy = %p.id, %repo, error = %e, "promotion after a promotion");
            }
        }
    }

    /// Runs the policies that wait for the scan of `digest`: every tag of
    /// a policy's source that names it (or an index listing it).
    pub(crate) async fn promote_on_scan(&self, digest: &str) {
        let tags = match self.meta.policy_tags_of(digest).await {
            Ok(t) => t,
            Err(e) => return tracing::warn!(%digest, error = %e, "finding tags to promote"),
        };
        for (repo, tag, tagged) in tags {
            let policies = match self.meta.policies(&repo).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%repo, error = %e, "reading promotion policies after a scan");
                    continue;
                }
            };
            for p in policies.iter().filter(|p| enabled(p) && needs_scan(p)) {
                if let Err(e) = self.run_policy(p, &tag, &tagged, false).await {
                    tracing::warn!(policy = %p.id, %repo, error = %e, "promotion after a scan");
                }
            }
        }
    }

    /// After an attestation was pushed to `repo` about `subject` (a `.att`
    /// tag or a bundle referrer): the policies of `repo` that demand
    /// provenance, over every tag naming it (or an index listing it).
    pub(crate) async fn promote_on_attestation(&self, repo: &str, subject: &str) {
        let _turn = self.promoting.lock().await;
        let tags = match self.meta.policy_tags_of(subject).await {
            Ok(t) => t,
            Err(e) => return tracing::warn!(%subject, error = %e, "finding tags to promote"),
        };
        let policies = match self.meta.policies(repo).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(%repo, error = %e, "reading promotion policies after an attestation"),
        };
        let demanding = |p: &&StoredPolicy| parsed(p).is_some_and(|p| p.enabled && p.require_provenance.is_some());
        for (_, tag, tagged) in tags.iter().filter(|(r, _, _)| r == repo) {
            for p in policies.iter().filter(demanding) {
                if let Err(e) = self.run_policy(p, tag, tagged, false).await {
                    tracing::warn!(policy = %p.id, %repo, error = %e, "promotion after an attestation");
                }
            }
        }
    }

    /// After a database import: the policies over the images whose counts
    /// changed (every tag naming them), and no others: an image that now
    /// passes is promoted; one that now fails stays where it is, its new
    /// evaluation recorded.
    pub(crate) async fn promote_after_rematch(&self, changed: &[String]) {
        for digest in changed {
            self.promote_on_scan(digest).await;
        }
    }

    /// Every tag of the policy's source, now.
    pub(crate) async fn apply_policy(&self, p: &StoredPolicy) -> Result<Vec<EvaluationRecord>, RegistryError> {
        let mut out = Vec::new();
        for (tag, digest) in self.meta.tagged(&p.repository).await? {
            out.push(self.run_policy(p, &tag, &digest, false).await?.record);
        }
        Ok(out)
    }
}

/// The stored policy's JSON; a row this version can't read is logged (it
/// does not run), never silently skipped.
fn parsed(p: &StoredPolicy) -> Option<PromotionPolicy> {
    serde_json::from_str(&p.policy)
        .inspect_err(|e| tracing::warn!(policy = %p.id, error = %e, "unreadable promotion policy"))
        .ok()
}

fn enabled(p: &StoredPolicy) -> bool {
    parsed(p).is_some_and(|p| p.enabled)
}

fn needs_scan(p: &StoredPolicy) -> bool {
    parsed(p).is_some_and(|p| p.needs_scan())
}
