//! The signature a policy with `sign_as` puts on what it promoted: made
//! right after the promotion commits, recorded in the evaluation, and tried
//! again (at later triggers, and once a minute for a day) until a signature
//! by the account's key verifies in the target.

use portcullis_meta::{now_ms, EvaluationOutcome, EvaluationRecord};
use serde::{Deserialize, Serialize};

use super::parsed;
use crate::{Registry, RegistryError};

/// How often promotions whose signing failed are tried again, and for how
/// long after the failure.
const SIGNING_RETRY: std::time::Duration = std::time::Duration::from_secs(60);
const SIGNING_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Held while a promotion's signature is checked and made (signing is rare).
static SIGNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where a promotion's signature stands, as its evaluation records it
/// (`detail.signature`) and the provenance API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub(crate) enum PromotionSignature {
    /// A signature by the account's key verifies in the target.
    Signed { signed_by: String, key_id: String },
    /// Signing failed; tried again at the next trigger.
    Failed { signed_by: String, error: String },
    /// No run of the policy has signed yet.
    Pending { signed_by: String },
}

impl PromotionSignature {
    /// The signature an evaluation's detail records, if it records one.
    fn recorded(detail: &serde_json::Value) -> Option<PromotionSignature> {
        serde_json::from_value(detail.get("signature")?.clone()).ok()
    }

    fn signed_by(&self) -> &str {
        match self {
            Self::Signed { signed_by, .. } | Self::Failed { signed_by, .. } | Self::Pending { signed_by } => signed_by,
        }
    }

    pub(crate) fn is_signed(&self) -> bool {
        matches!(self, Self::Signed { .. })
    }
}

impl Registry {
    /// The policy's signature over a promoted `digest` in `repo`, made now
    /// if it is not there yet: `Signed` with the key id, or `Failed` with
    /// why (tried again at the next trigger).
    pub(super) async fn ensure_signed(
        &self,
        repo: &str,
        digest: &str,
        account: &str,
    ) -> Result<PromotionSignature, RegistryError> {
        // Check and sign as one step, so two triggers racing over the same
        // image (a push and an `apply`) add one signature, not two.
        let _one_at_a_time = SIGNING.lock().await;
        let signed_by = account.to_string();
        let failed = |error: String| PromotionSignature::Failed {
            signed_by: signed_by.clone(),
            error,
        };
        let signed = |key_id: String| PromotionSignature::Signed {
            signed_by: signed_by.clone(),
            key_id,
        };
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
    /// provenance API, as the policy's last run over `digest` left it;
    /// `Pending` before any run signed. Read from the records, so a read
    /// costs no signature check.
    pub(crate) async fn promotion_signature(
        &self,
        digest: &str,
        policy_id: &str,
    ) -> Result<Option<PromotionSignature>, RegistryError> {
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
            .filter_map(|d| PromotionSignature::recorded(&d))
            .find(|s| s.signed_by() == account);
        Ok(Some(
            recorded.unwrap_or(PromotionSignature::Pending { signed_by: account }),
        ))
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
        let before = PromotionSignature::recorded(&detail);
        if latest.outcome != EvaluationOutcome::Promoted || !matches!(before, Some(PromotionSignature::Failed { .. })) {
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
        if before.is_some_and(|b| std::mem::discriminant(&b) == std::mem::discriminant(&signature)) {
            return Ok(());
        }
        detail["signature"] = serde_json::to_value(&signature).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let record = EvaluationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            detail: detail.to_string(),
            at: now_ms(),
            ..latest
        };
        self.meta.record_evaluation(&record).await?;
        Ok(())
    }
}
