//! Promotion policies at work: after a push to a source repository, after
//! an image's scan finishes, after a vulnerability database import, and on
//! request (`apply`), each policy of the repository is evaluated over the
//! image's facts (the policy crate decides) and a passing image is copied
//! to the target (the meta crate's one-transaction `promote`). Every
//! evaluation is recorded; an unchanged re-evaluation is not recorded again,
//! so nothing retries in a loop.
//!
//! A promoted image does not trigger the target repository's own policies
//! (chains could loop); run `apply` there if a chain is wanted.

use portcullis_meta::{now_ms, AuditEvent, EvaluationRecord, PromotionCopy, StoredPolicy};
use portcullis_oci::{validate_tag, Digest};
use portcullis_policy::{CompiledPolicy, ImageFacts, PackageFact, PromotionPolicy};
use serde_json::json;

use crate::{Registry, RegistryError};

/// What one evaluation decided, as recorded (or, for a dry run, would be).
pub(crate) struct Outcome {
    pub record: EvaluationRecord,
}

/// Promotions one promotion may set off in turn (a cycle of policies ends
/// on its own, as a repeated promotion changes nothing; this bounds a long one).
const MAX_CHAIN: usize = 8;

impl Registry {
    /// The facts of one image (not an index) for the rules; `Err` with the
    /// outcome (`pending` or `failed`) when its scan is not usable.
    async fn image_facts(&self, tag: &str, digest: &str, needs_scan: bool) -> Result<ImageFacts, (String, String)> {
        let mut facts = ImageFacts {
            tag: tag.to_string(),
            digest: digest.to_string(),
            ..ImageFacts::default()
        };
        if !needs_scan {
            return Ok(facts);
        }
        let scan = self
            .meta
            .scan(digest)
            .await
            .map_err(|e| ("pending".to_string(), e.to_string()))?;
        let Some(scan) = scan else {
            return Err(("pending".into(), format!("{digest} has not been scanned")));
        };
        match scan.status.as_str() {
            // Zero findings from no database is not a clean image: wait for
            // a database (its import re-matches and re-runs the policies).
            "done" if scan.db_generation.is_none() => {
                return Err((
                    "pending".into(),
                    format!("{digest} was scanned before any vulnerability database was loaded"),
                ))
            }
            "done" => {}
            "failed" => {
                return Err((
                    "failed".into(),
                    format!("the scan of {digest} failed: {}", scan.error.unwrap_or_default()),
                ))
            }
            other => return Err(("pending".into(), format!("the scan of {digest} is {other}"))),
        }
        facts.counts = scan.counts.map(|n| n.max(0) as u64);
        let sbom = self.meta.scan_sbom(digest).await.ok().flatten();
        let image = sbom
            .as_deref()
            .and_then(crate::scanner::sbom_from_bytes)
            .ok_or_else(|| {
                (
                    "failed".to_string(),
                    format!("the stored SBOM of {digest} is unreadable"),
                )
            })?;
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
        Ok(facts)
    }

    /// The images a manifest stands for: itself, or every image an index
    /// reaches (through nested indexes).
    async fn images_of(&self, repo: &str, digest: &str) -> Result<Vec<String>, RegistryError> {
        self.images_reached_by_digest(repo, digest).await
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
            outcome: String::new(),
            target_tag: None,
            detail: String::new(),
            at: now_ms(),
        };
        let (outcome, detail, passed) = self.evaluate(&compiled, &stored.repository, tag, digest).await?;
        record.outcome = outcome;
        record.detail = detail.to_string();
        if passed {
            let target_tag = compiled.template.render(tag, digest, now_ms() / 1000);
            record.target_tag = Some(target_tag.clone());
            record.outcome = if dry_run {
                "passed".into()
            } else {
                match self.promote(stored, &policy, tag, digest, &target_tag).await {
                    Ok(now) => {
                        // Signed when promoted, not again on a repeated trigger.
                        if let Some(account) = policy.sign_as.as_ref().filter(|_| now) {
                            // The promotion stands either way; the record says how signing went.
                            let signed = match self.sign_image(&policy.target, digest, account).await {
                                Ok(key) => json!({"signed_by": account, "key_id": key}),
                                Err(e) => json!({"signed_by": account, "signing_failed": e.to_string()}),
                            };
                            record.detail = json!({"rules": detail, "signature": signed}).to_string();
                        }
                        if now {
                            Box::pin(self.promote_onward(&policy.target, &target_tag, digest, depth + 1)).await;
                        }
                        "promoted".into()
                    }
                    Err(why) => {
                        record.detail = json!({"rules": detail, "refused": why}).to_string();
                        "refused".into()
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

    /// (outcome, detail, passed) of the rules over every image `digest`
    /// stands for: an index passes only if each of its images does.
    async fn evaluate(
        &self,
        compiled: &CompiledPolicy,
        repo: &str,
        tag: &str,
        digest: &str,
    ) -> Result<(String, serde_json::Value, bool), RegistryError> {
        let needs_scan = compiled.policy.needs_scan();
        let images = self.images_of(repo, digest).await;
        let images = match images {
            Ok(i) => i,
            Err(e) => return Ok(("failed".into(), json!({"error": e.to_string()}), false)),
        };
        if images.is_empty() {
            return Ok((
                "failed".into(),
                json!({"error": "an index without images the scanner can read"}),
                false,
            ));
        }
        let mut per_image = Vec::new();
        let mut all_pass = true;
        for image in &images {
            match self.image_facts(tag, image, needs_scan).await {
                Ok(facts) => {
                    let e = compiled.evaluate(&facts);
                    all_pass &= e.passed;
                    per_image.push(json!({"digest": image, "passed": e.passed, "rules": e.rules}));
                }
                Err((outcome, why)) => {
                    return Ok((outcome, json!({"digest": image, "reason": why}), false));
                }
            }
        }
        let outcome = if all_pass { "passed" } else { "failed" };
        Ok((outcome.into(), json!({"images": per_image}), all_pass))
    }

    /// The copy itself, after the owner's right to push to the target and
    /// the rendered tag are checked: `Ok(true)` when promoted now, `Ok(false)`
    /// when this policy had promoted this image there already; `Err` says
    /// why it was refused.
    async fn promote(
        &self,
        stored: &StoredPolicy,
        policy: &PromotionPolicy,
        tag: &str,
        digest: &str,
        target_tag: &str,
    ) -> Result<bool, String> {
        validate_tag(target_tag).map_err(|_| format!("the template makes {target_tag:?}, which is not a valid tag"))?;
        if let Ok(Some(p)) = self.meta.provenance(&policy.target, target_tag).await {
            if p.digest == digest && p.policy_id == stored.id {
                return Ok(false); // promoted before: nothing to do
            }
        }
        let owner = self
            .meta
            .account(&stored.owner)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the policy's owner {} no longer exists", stored.owner))?;
        let rights = self
            .account_actions(&owner, &policy.target)
            .await
            .map_err(|e| e.to_string())?;
        if !rights.contains(portcullis_auth::Actions::PUSH) {
            return Err(format!("{} may not push to {}", stored.owner, policy.target));
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
        result.map_err(|e| e.to_string())
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
        let policies = self.meta.policies(repo).await.unwrap_or_default();
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
            let policies = self.meta.policies(&repo).await.unwrap_or_default();
            for p in policies.iter().filter(|p| enabled(p) && needs_scan(p)) {
                if let Err(e) = self.run_policy(p, &tag, &tagged, false).await {
                    tracing::warn!(policy = %p.id, %repo, error = %e, "promotion after a scan");
                }
            }
        }
    }

    /// After a database import: every policy with scan rules over every
    /// tag of its source (an image that now passes is promoted; one that
    /// now fails stays where it is, its new evaluation recorded).
    pub(crate) async fn promote_after_rematch(&self) {
        let policies = self.meta.all_policies().await.unwrap_or_default();
        for p in policies.iter().filter(|p| enabled(p) && needs_scan(p)) {
            if let Err(e) = self.apply_policy(p).await {
                tracing::warn!(policy = %p.id, error = %e, "promotion after a database import");
            }
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

fn parsed(p: &StoredPolicy) -> Option<PromotionPolicy> {
    serde_json::from_str(&p.policy).ok()
}

fn enabled(p: &StoredPolicy) -> bool {
    parsed(p).is_some_and(|p| p.enabled)
}

fn needs_scan(p: &StoredPolicy) -> bool {
    parsed(p).is_some_and(|p| p.needs_scan())
}
