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
//!
//! Here the triggers (a push, a scan, an attestation, a database import,
//! `apply`); [`evaluate`] judges an image and copies it; [`signature`]
//! signs what a policy with `sign_as` promoted.

mod evaluate;
mod signature;

use portcullis_meta::{EvaluationRecord, StoredPolicy};
use portcullis_oci::{Digest, Reference};
use portcullis_policy::PromotionPolicy;

use crate::{Registry, RegistryError};

/// Promotions one promotion may set off in turn (a cycle of policies ends
/// on its own, as a repeated promotion changes nothing; this bounds a long one).
const MAX_CHAIN: usize = 8;

impl Registry {
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

    /// Whether `tag` is a cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`)
    /// holding an artifact: it travels with its image (promotion copies
    /// it), so no policy judges it as an image of its own. A runnable image
    /// under such a name is judged like any other.
    async fn is_accessory_tag(&self, repo: &str, tag: &str, digest: &str) -> Result<bool, RegistryError> {
        if portcullis_oci::cosign_tag_subject(tag).is_none() {
            return Ok(false);
        }
        let Ok(digest) = digest.parse::<Digest>() else {
            return Ok(false);
        };
        let Some(m) = self.meta.get_manifest(repo, &Reference::Digest(digest)).await? else {
            return Ok(false);
        };
        Ok(portcullis_oci::Manifest::parse(&m.content, Some(&m.media_type))
            .is_ok_and(|m| m.kind() == portcullis_oci::ManifestKind::Artifact))
    }

    /// The tags of `tagged` ((tag, digest) in `repo`) that policies judge:
    /// all but cosign's accessory tags.
    async fn judged_tags<'a>(&self, repo: &str, tagged: Vec<(&'a str, &'a str)>) -> Vec<&'a str> {
        let mut out = Vec::new();
        for (tag, digest) in tagged {
            match self.is_accessory_tag(repo, tag, digest).await {
                Ok(false) => out.push(tag),
                Ok(true) => {}
                // Judged: an evaluation then records what went wrong.
                Err(e) => {
                    tracing::warn!(%repo, %tag, error = %e, "reading a tag before its promotion");
                    out.push(tag);
                }
            }
        }
        out
    }

    /// Runs every enabled policy of `repo` over the tags a push just set.
    pub(crate) async fn promote_on_push(&self, repo: &str, tags: &[&str], digest: &Digest) {
        let tagged: Vec<(&str, &str)> = tags.iter().map(|t| (*t, digest.as_str())).collect();
        let tags = self.judged_tags(repo, tagged).await;
        if tags.is_empty() {
            return;
        }
        let policies = match self.meta.policies(repo).await {
            Ok(p) => p,
            Err(e) => return tracing::warn!(%repo, error = %e, "reading promotion policies"),
        };
        for p in policies.iter().filter(|p| enabled(p)) {
            for tag in &tags {
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
            if self
                .judged_tags(&repo, vec![(tag.as_str(), tagged.as_str())])
                .await
                .is_empty()
            {
                continue;
            }
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
            if self
                .judged_tags(repo, vec![(tag.as_str(), tagged.as_str())])
                .await
                .is_empty()
            {
                continue;
            }
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
            if self.is_accessory_tag(&p.repository, &tag, &digest).await? {
                continue;
            }
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
