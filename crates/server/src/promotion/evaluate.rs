//! One policy over one image: the facts its rules need, the verdict, and
//! the copy into the target when it passes.

use portcullis_auth::Actions;
use portcullis_meta::{
    now_ms, AuditEvent, EvaluationOutcome, EvaluationRecord, PromotionCopy, ScanStatus, StoredPolicy,
};
use portcullis_oci::validate_tag;
use portcullis_policy::{CompiledPolicy, ImageFacts, PackageFact, PromotionPolicy};
use serde_json::json;

use crate::access::{Caller, Need, Principal};
use crate::{Registry, RegistryError};

/// What one evaluation decided, as recorded (or, for a dry run, would be).
pub(crate) struct Outcome {
    pub record: EvaluationRecord,
}

impl Registry {
    /// The facts of one image (not an index) for the rules; `Ok(Err)` with
    /// the outcome (`pending` or `failed`) when its scan is not usable, `Err`
    /// when the database could not say.
    pub(super) async fn image_facts(
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
        match scan.status {
            // Zero findings from no database is not a clean image: wait for
            // a database (its import re-matches and re-runs the policies).
            ScanStatus::Done if scan.db_generation.is_none() => {
                return Ok(Err((
                    EvaluationOutcome::Pending,
                    format!("{digest} was scanned before any vulnerability database was loaded"),
                )))
            }
            ScanStatus::Done => {}
            ScanStatus::Failed => {
                return Ok(Err((
                    EvaluationOutcome::Failed,
                    format!("the scan of {digest} failed: {}", scan.error.unwrap_or_default()),
                )))
            }
            other @ (ScanStatus::Queued | ScanStatus::Scanning) => {
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
    pub(super) async fn run_policy_at(
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
                            signed = Some(signature.is_signed());
                            record.detail = json!({"rules": detail, "signature": signature}).to_string();
                        }
                        if now {
                            self.attest_promotion(crate::signing::attestations::PromotionRecord {
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
    pub(super) async fn suspension(
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

    /// (outcome, detail, passed) of the rules over every image `digest`
    /// stands for: an index passes only if each of its images does. With
    /// `require_provenance`, each image's provenance is judged too (signers
    /// created after `saved_at`, when the policy was last saved, are not
    /// trusted).
    pub(super) async fn evaluate(
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
    pub(super) async fn promote(
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
}
