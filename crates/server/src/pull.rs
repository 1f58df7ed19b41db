//! Pull rules at the manifest endpoint: an image manifest whose scan says
//! what the repository's (or namespace's) rule refuses is not served.
//! Only image manifests are judged: an index is served and each of its
//! images judged when pulled; blobs are always served. System
//! administrators are exempt (the scanner reads storage, not this API).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_oci::{Digest, Manifest, Reference};
use portcullis_policy::{PullRule, ScanState, SignedBy};
use portcullis_sign::{bundle_layers, bundle_signer, candidates, signature_tag, signer, PublicKey};

use crate::access::Caller;
use crate::cache::CachedManifest;
use crate::{Registry, RegistryError};

pub(crate) struct PullRuleCache {
    /// The rule in force per repository (its own and its namespace's).
    rules: crate::cache::TtlMap<Option<PullRule>>,
    /// Images found signed, by (repository, digest, trusted key ids): a
    /// verified image costs no signature check per pull. Another key set
    /// (a key revoked, a member gone) is another entry.
    verified: Mutex<HashMap<String, Instant>>,
}

/// How long a verified signature is believed without checking again (a
/// deleted signature manifest stops counting after this at the latest).
const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// The largest signature payload or bundle read (real ones are a few KiB).
const MAX_PAYLOAD: u64 = 64 << 10;

impl PullRuleCache {
    pub(crate) fn new(ttl: Duration) -> PullRuleCache {
        PullRuleCache {
            rules: crate::cache::TtlMap::new(ttl),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every cached rule (a repository's or namespace's changed).
    pub(crate) fn clear(&self) {
        self.rules.clear();
    }
}

fn parse(json: &str) -> Option<PullRule> {
    serde_json::from_str::<PullRule>(json).ok().filter(|r| !r.is_empty())
}

/// What the signatures over an image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signed {
    /// No signature artifact at all.
    Unsigned,
    /// Signature artifacts, none verifying under the keys asked about.
    Unverified,
    /// Verified under the key with this id.
    By(String),
}

impl Registry {
    /// The rule in force for `repo`: its own and its namespace's together.
    async fn pull_rule(&self, repo: &str) -> Result<Option<PullRule>, RegistryError> {
        if let Some(rule) = self.pull_rules.rules.get(repo) {
            return Ok(rule);
        }
        let (own, namespace) = self.meta.pull_rules(repo).await?;
        let rule = match (parse(&own), parse(&namespace)) {
            (Some(a), Some(b)) => Some(a.and(&b)),
            (a, b) => a.or(b),
        };
        self.pull_rules.rules.put(repo, rule.clone());
        Ok(rule)
    }

    async fn exempt(&self, caller: &Caller) -> bool {
        match caller {
            Caller::Account(p) => p.account.admin,
            Caller::Bearer(c) => self.meta.account(&c.sub).await.ok().flatten().is_some_and(|a| a.admin),
            Caller::Anonymous => false,
        }
    }

    /// `Err(DENIED)` naming the rule and the counts when `m` must not be served.
    pub(crate) async fn check_pull_rule(
        &self,
        caller: &Caller,
        repo: &str,
        m: &CachedManifest,
    ) -> Result<(), RegistryError> {
        match self.pull_rule(repo).await? {
            Some(rule) if !self.exempt(caller).await => self.judge(&rule, repo, m).await,
            _ => Ok(()),
        }
    }

    /// The pull rules of `repo` over `m`, with no one exempt (admission).
    pub(crate) async fn judge_pull(&self, repo: &str, m: &CachedManifest) -> Result<(), RegistryError> {
        match self.pull_rule(repo).await? {
            Some(rule) => self.judge(&rule, repo, m).await,
            None => Ok(()),
        }
    }

    async fn judge(&self, rule: &PullRule, repo: &str, m: &CachedManifest) -> Result<(), RegistryError> {
        let is_image = Manifest::parse(&m.content, Some(&m.media_type)).is_ok_and(|m| crate::scanner::is_image(&m));
        if !is_image {
            return Ok(());
        }
        if let Some(by) = &rule.require_signed_by {
            self.check_signed(repo, &m.digest, by).await?;
        }
        let state = match self.meta.scan(&m.digest).await? {
            None => ScanState::None,
            Some(s) => match s.status.as_str() {
                // Scanned before any vulnerability database was loaded:
                // its counts say nothing yet.
                "done" if s.db_generation.is_none() => ScanState::Pending,
                "done" => ScanState::Done(s.counts.map(|n| n.max(0) as u64)),
                "failed" => ScanState::Failed(s.error.unwrap_or_default()),
                _ => ScanState::Pending,
            },
        };
        rule.judge(&state)
            .map_err(|why| RegistryError::Denied(format!("{} in {repo}: {why}", &*m.digest)))
    }

    /// `Err(DENIED)` unless a cosign signature in `repo` over `digest`, in
    /// the tag form or as a sigstore bundle referrer, verifies under a
    /// current key of `by`'s teams or accounts.
    async fn check_signed(&self, repo: &str, digest: &str, by: &SignedBy) -> Result<(), RegistryError> {
        let who = || {
            let mut parts: Vec<String> = by.teams.iter().map(|t| format!("team {t}")).collect();
            parts.extend(by.accounts.iter().map(|a| format!("account {a}")));
            parts.join(", ")
        };
        let trusted = self.meta.trusted_keys(&by.teams, &by.accounts).await?;
        let keys: Vec<PublicKey> = trusted
            .iter()
            .filter_map(|(_, _, pem)| PublicKey::from_pem(pem).ok())
            .collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let cache_key = format!("{repo}@{digest}@{}", ids.join(","));
        {
            let verified = self.pull_rules.verified.lock().expect("not poisoned");
            if verified.get(&cache_key).is_some_and(|at| at.elapsed() < VERIFIED_TTL) {
                return Ok(());
            }
        }
        let denied = |why: String| {
            Err(RegistryError::Denied(format!(
                "{digest} in {repo}: pull rule require_signed_by ({}): {why}",
                who()
            )))
        };
        let image: Digest = digest.parse()?;
        let verified = match self.signature_verdict(repo, &image, &keys).await? {
            Signed::Unsigned => {
                return denied(format!(
                    "the image is not signed (no {}, no signature referrer)",
                    signature_tag(&image)
                ))
            }
            _ if keys.is_empty() => return denied("no current key belongs to them".into()),
            Signed::Unverified => false,
            Signed::By(_) => true,
        };
        if verified {
            let mut cache = self.pull_rules.verified.lock().expect("not poisoned");
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(cache_key, Instant::now());
            return Ok(());
        }
        denied("no signature verifies under a current key of theirs".into())
    }

    /// Whether a cosign signature in `repo` over `image` (tag form, then
    /// sigstore bundle referrers) verifies under one of `keys`.
    pub(crate) async fn signature_verdict(
        &self,
        repo: &str,
        image: &Digest,
        keys: &[PublicKey],
    ) -> Result<Signed, RegistryError> {
        let sig = self
            .meta
            .get_manifest(repo, &Reference::Tag(signature_tag(image)))
            .await?;
        let referrers = self.meta.referrers(repo, image, None).await?;
        if sig.is_none() && referrers.is_empty() {
            return Ok(Signed::Unsigned);
        }
        if keys.is_empty() {
            return Ok(Signed::Unverified);
        }
        for c in sig.as_ref().map(|s| candidates(&s.content)).unwrap_or_default() {
            if let Some(payload) = self.signature_blob(repo, &c.payload).await? {
                if let Some(k) = signer(image, &c, &payload, keys) {
                    return Ok(Signed::By(k.id.clone()));
                }
            }
        }
        for r in referrers.iter().take(64) {
            let Ok(d) = r.digest.parse::<Digest>() else {
                continue;
            };
            let Some(m) = self.meta.get_manifest(repo, &Reference::Digest(d)).await? else {
                continue;
            };
            for (layer, _) in bundle_layers(&m.content) {
                if let Some(bundle) = self.signature_blob(repo, &layer).await? {
                    if let Some(k) = bundle_signer(image, &bundle, keys) {
                        return Ok(Signed::By(k.id.clone()));
                    }
                }
            }
        }
        Ok(Signed::Unverified)
    }

    /// A small blob of `repo` (a signature payload or bundle), if it is
    /// there and small enough to be one.
    async fn signature_blob(&self, repo: &str, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.meta.blob_in_repo(repo, digest).await? {
            Some(size) if size <= MAX_PAYLOAD => Ok(tokio::fs::read(self.store.blob_path(digest)).await.ok()),
            _ => Ok(None),
        }
    }
}
