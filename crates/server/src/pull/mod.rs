//! Pull rules at the manifest endpoint: a manifest whose scan or
//! signatures fail the repository's or the namespace's rule is not served.
//! Every manifest that could run is judged, whatever its config's media
//! type (`reach.rs`); an index is served only when every image it reaches
//! passes; blobs are always served. Each rule is checked on its own. A
//! stored rule that does not parse refuses everything (fail closed).
//! System administrators are exempt (the scanner reads storage, not this
//! API).

pub(crate) mod audit;
mod provenance;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portcullis_meta::ScanStatus;
use portcullis_oci::{Digest, Reference};
use portcullis_policy::{PullRule, ScanState, SignedBy};
use portcullis_sign::{
    bundle_layers, bundle_signer, bundle_subject_names, candidates, is_attestation_referrer, payload_reference,
    reference_names_repository, signature_tag, signer, PublicKey,
};

use crate::access::Caller;
use crate::cache::CachedManifest;
use crate::{Registry, RegistryError};

/// The rules in force for one repository.
#[derive(Debug, Clone)]
pub(crate) enum InForce {
    /// Its own and its namespace's, each checked on its own (none: empty).
    Rules(Vec<PullRule>),
    /// A stored rule that does not parse: nothing is served until it is
    /// saved again.
    Corrupt(String),
}

pub(crate) struct PullRuleCache {
    /// The rules in force per repository (its own and its namespace's).
    rules: crate::cache::TtlMap<InForce>,
    /// Signature verdicts, positive and negative, by a fingerprint of the
    /// repository, the image, its signature artifacts and the keys asked
    /// about: a pull costs no ECDSA work while none of them changes, and
    /// any change (a new signature, a key revoked) is another entry.
    verdicts: Verdicts<Signed>,
    /// Provenance verdicts (`Ok(key id)` or why not), by a fingerprint of
    /// the repository, the image, its `.att` manifest and referrers, the
    /// keys and the rule: a new attestation is a new entry.
    provenance: Verdicts<Result<String, String>>,
    /// Signature checks running at once, off the async workers.
    checking: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How long a verdict is believed without checking again (a deleted key
/// or signature changes the fingerprint at once; this bounds the rest).
const VERDICT_TTL: Duration = Duration::from_secs(60);
/// Verdicts remembered; past it the cache starts again.
const MAX_VERDICTS: usize = 100_000;
/// Tag-form signatures and sigstore bundles examined per image: real
/// images carry a few, and each costs a few elliptic-curve operations.
const MAX_SIGNATURES: usize = 32;
/// Referrers read per image while looking for bundles.
const MAX_REFERRERS: usize = 64;
/// The largest signature payload or bundle read (real ones are a few KiB).
const MAX_PAYLOAD: u64 = 64 << 10;

impl PullRuleCache {
    pub(crate) fn new(ttl: Duration) -> PullRuleCache {
        PullRuleCache {
            rules: crate::cache::TtlMap::new(ttl),
            verdicts: Verdicts::default(),
            provenance: Verdicts::default(),
            checking: std::sync::Arc::new(tokio::sync::Semaphore::new(2)),
        }
    }

    /// Forgets every cached rule (a repository's or namespace's changed).
    pub(crate) fn clear(&self) {
        self.rules.clear();
    }
}

/// Verdicts by fingerprint, believed for [`VERDICT_TTL`], at most
/// [`MAX_VERDICTS`] (past it the map starts again).
pub(crate) struct Verdicts<V>(Mutex<HashMap<String, (Instant, V)>>);

impl<V> Default for Verdicts<V> {
    fn default() -> Self {
        Verdicts(Mutex::new(HashMap::new()))
    }
}

impl<V: Clone> Verdicts<V> {
    fn get(&self, fingerprint: &str) -> Option<V> {
        let cache = self.0.lock().expect("not poisoned");
        cache
            .get(fingerprint)
            .filter(|(at, _)| at.elapsed() < VERDICT_TTL)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, fingerprint: String, verdict: V) {
        let mut cache = self.0.lock().expect("not poisoned");
        if cache.len() >= MAX_VERDICTS {
            cache.clear();
        }
        cache.insert(fingerprint, (Instant::now(), verdict));
    }
}

/// The rules stored for `repo` (its own, its namespace's) as they are in force.
fn in_force(repo: &str, own: &str, namespace: &str) -> InForce {
    let mut rules = Vec::new();
    for (json, whose) in [(own, "repository"), (namespace, "namespace")] {
        if json.trim().is_empty() || json.trim() == "null" {
            continue;
        }
        match serde_json::from_str::<PullRule>(json) {
            Ok(rule) if rule.is_empty() => {}
            Ok(rule) => rules.push(rule),
            Err(e) => {
                tracing::error!(%repo, rule = %json, error = %e, "unreadable {whose} pull rule: refusing every pull");
                return InForce::Corrupt(format!(
                    "the {whose} pull rule over {repo} is unreadable ({e}); nothing is served until it is saved again"
                ));
            }
        }
    }
    InForce::Rules(rules)
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

/// `team a/b, account c`: the signers a rule names, for its refusals.
pub(crate) fn signers_text(by: &SignedBy) -> String {
    let mut parts: Vec<String> = by.teams.iter().map(|t| format!("team {t}")).collect();
    parts.extend(by.accounts.iter().map(|a| format!("account {a}")));
    parts.join(", ")
}

/// The name of the rule a refusal from [`Registry::check_pull_rule`]
/// names (`deny_severity`, `require_signed_by`, ...), or `unreadable`
/// for a stored rule that does not parse, for the server log.
pub(crate) fn refusing_rule(why: &str) -> &str {
    if why.contains("pull rule over") {
        return "unreadable";
    }
    why.split_once("pull rule ")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
}

impl Registry {
    /// The rules in force for `repo`: its own and its namespace's.
    async fn pull_rule(&self, repo: &str) -> Result<InForce, RegistryError> {
        if let Some(rule) = self.pull_rules.rules.get(repo) {
            return Ok(rule);
        }
        let (own, namespace) = self.meta.pull_rules(repo).await?;
        let rule = in_force(repo, &own, &namespace);
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
            InForce::Rules(rules) if rules.is_empty() => Ok(()),
            _ if self.exempt(caller).await => Ok(()),
            rules => self.judge(&rules, repo, m).await,
        }
    }

    /// What `repo`'s rules decide before there is an image to judge (a
    /// pull-through cache asks before it fetches): `Err(DENIED)` for an
    /// unreadable rule, a vulnerability database older than a rule allows
    /// and a named signer that is gone; `Ok(true)` when a rule remains
    /// that must judge the image itself, `Ok(false)` when none does.
    pub(crate) async fn pull_rule_precheck(&self, caller: &Caller, repo: &str) -> Result<bool, RegistryError> {
        let rules = match self.pull_rule(repo).await? {
            InForce::Rules(rules) if rules.is_empty() => return Ok(false),
            _ if self.exempt(caller).await => return Ok(false),
            InForce::Corrupt(why) => return Err(RegistryError::Denied(format!("{repo}: {why}"))),
            InForce::Rules(rules) => rules,
        };
        if rules.iter().any(|r| r.max_database_age.is_some()) {
            let age = self.database_age().await?;
            for rule in &rules {
                rule.judge_database(age)
                    .map_err(|why| RegistryError::Denied(format!("{repo}: {why}")))?;
            }
        }
        for rule in &rules {
            let by = rule
                .require_signed_by
                .iter()
                .chain(rule.require_provenance.iter().map(|p| &p.signed_by));
            for by in by {
                if let Err(why) = self.signers_keys(by, rule.saved_at).await? {
                    return Err(RegistryError::Denied(format!(
                        "{repo}: pull rule require_signed_by ({}): {why}",
                        signers_text(by)
                    )));
                }
            }
        }
        Ok(true)
    }

    /// The pull rules of `repo` over `m`, with no one exempt (admission).
    pub(crate) async fn judge_pull(&self, repo: &str, m: &CachedManifest) -> Result<(), RegistryError> {
        match self.pull_rule(repo).await? {
            InForce::Rules(rules) if rules.is_empty() => Ok(()),
            rules => self.judge(&rules, repo, m).await,
        }
    }

    /// Every image `m` reaches must pass every rule.
    async fn judge(&self, rules: &InForce, repo: &str, m: &CachedManifest) -> Result<(), RegistryError> {
        let rules = match rules {
            InForce::Corrupt(why) => return Err(RegistryError::Denied(format!("{} in {repo}: {why}", &*m.digest))),
            InForce::Rules(rules) => rules,
        };
        let (_, parsed) = crate::reach::kind_of(&m.content, &m.media_type);
        for image in self.images_reached(repo, &m.digest, parsed.as_ref()).await? {
            self.judge_image(rules, repo, &image).await?;
        }
        Ok(())
    }

    async fn judge_image(&self, rules: &[PullRule], repo: &str, digest: &str) -> Result<(), RegistryError> {
        for rule in rules {
            if let Some(by) = &rule.require_signed_by {
                self.check_signed(repo, digest, by, rule.saved_at).await?;
            }
            if let Some(required) = &rule.require_provenance {
                if let Err(why) = self.provenance_verdict(repo, digest, required, rule.saved_at).await? {
                    return Err(RegistryError::Denied(format!(
                        "{digest} in {repo}: pull rule require_provenance ({}): {why}",
                        signers_text(&required.signed_by)
                    )));
                }
            }
        }
        let state = match self.meta.scan(digest).await? {
            None => ScanState::None,
            Some(s) => match s.status {
                // Scanned before any vulnerability database was loaded:
                // its counts say nothing yet.
                ScanStatus::Done if s.db_generation.is_none() => ScanState::Pending,
                ScanStatus::Done => ScanState::Done(s.counts.map(|n| n.max(0) as u64)),
                ScanStatus::Failed => ScanState::Failed(s.error.unwrap_or_default()),
                ScanStatus::Queued | ScanStatus::Scanning => ScanState::Pending,
            },
        };
        for rule in rules {
            rule.judge(&state)
                .map_err(|why| RegistryError::Denied(format!("{digest} in {repo}: {why}")))?;
        }
        if rules.iter().any(|r| r.max_database_age.is_some()) {
            let age = self.database_age().await?;
            for rule in rules {
                rule.judge_database(age)
                    .map_err(|why| RegistryError::Denied(format!("{digest} in {repo}: {why}")))?;
            }
        }
        Ok(())
    }

    /// `Err(DENIED)` unless a cosign signature in `repo` over `digest`, in
    /// the tag form or as a sigstore bundle referrer, verifies under a
    /// current key of `by`'s teams or accounts (`signers_keys`).
    async fn check_signed(
        &self,
        repo: &str,
        digest: &str,
        by: &SignedBy,
        saved_at: Option<i64>,
    ) -> Result<(), RegistryError> {
        let denied = |why: String| {
            Err(RegistryError::Denied(format!(
                "{digest} in {repo}: pull rule require_signed_by ({}): {why}",
                signers_text(by)
            )))
        };
        let keys = match self.signers_keys(by, saved_at).await? {
            Ok(keys) => keys,
            Err(why) => return denied(why),
        };
        let image: Digest = digest.parse()?;
        match self.signature_verdict(repo, &image, &keys, by.match_reference).await? {
            Signed::Unsigned => denied(format!(
                "the image is not signed (no {}, no signature referrer)",
                signature_tag(&image)
            )),
            _ if keys.is_empty() => denied("no current key belongs to them".into()),
            Signed::Unverified => denied("no signature verifies under a current key of theirs".into()),
            Signed::By(_) => Ok(()),
        }
    }

    /// The current keys of `by`'s teams' members and accounts; `Ok(Err)`
    /// says why the rule fails whatever was signed: a named signer that is
    /// gone, or was created after the rule was saved (`saved_at`), fails
    /// it, so a deleted team never loosens a rule, and whoever takes its
    /// name later is not trusted.
    pub(crate) async fn signers_keys(
        &self,
        by: &SignedBy,
        saved_at: Option<i64>,
    ) -> Result<Result<Vec<PublicKey>, String>, RegistryError> {
        for (signer, created) in self.meta.signers_created(&by.teams, &by.accounts).await? {
            let why = match created {
                None => format!("{signer} no longer exists"),
                Some(at) if saved_at.is_some_and(|saved| at > saved) => {
                    format!("{signer} was created after the rule was saved (a new holder of the name)")
                }
                Some(_) => continue,
            };
            return Ok(Err(format!("{why}; save the rule again to trust it")));
        }
        let trusted = self.meta.trusted_keys(&by.teams, &by.accounts).await?;
        Ok(Ok(trusted
            .iter()
            .filter_map(|(_, _, pem)| PublicKey::from_pem(pem).ok())
            .collect()))
    }

    /// Whether a cosign signature in `repo` over `image` (tag form, then
    /// sigstore bundle referrers) verifies under one of `keys`. At most
    /// [`MAX_SIGNATURES`] of each form are examined; the checks run on the
    /// blocking pool, two at a time; verdicts are cached by fingerprint.
    /// With `match_reference`, only signatures that name `repo` count.
    pub(crate) async fn signature_verdict(
        &self,
        repo: &str,
        image: &Digest,
        keys: &[PublicKey],
        match_reference: bool,
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
        let fingerprint = {
            let mut parts = vec![
                repo,
                image.as_str(),
                if match_reference { "for-repository" } else { "any" },
                sig.as_ref().map_or("-", |s| s.digest.as_str()),
            ];
            parts.extend(referrers.iter().map(|r| r.digest.as_str()));
            parts.extend(keys.iter().map(|k| k.id.as_str()));
            Digest::sha256_of(parts.join("\n").as_bytes()).to_string()
        };
        if let Some(verdict) = self.pull_rules.verdicts.get(&fingerprint) {
            return Ok(verdict);
        }
        // Read what is to be checked (I/O), then check it (CPU) apart.
        let mut tagged = Vec::new();
        for c in sig.as_ref().map(|s| candidates(&s.content)).unwrap_or_default() {
            if tagged.len() == MAX_SIGNATURES {
                break;
            }
            if let Some(payload) = self.signature_blob(repo, &c.payload).await? {
                let names_repo = || payload_reference(&payload).is_some_and(|r| reference_names_repository(&r, repo));
                if !match_reference || names_repo() {
                    tagged.push((c, payload));
                }
            }
        }
        let mut bundles = Vec::new();
        // Only bundle referrers (cosign's artifact type) that are not
        // attestations (by their predicate type annotation): SBOMs,
        // attestations and other referrers can't crowd a signature out of
        // the window.
        let bundle_referrers = referrers.iter().filter(|r| {
            let attestation = r
                .annotations
                .as_deref()
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                .is_some_and(|a| is_attestation_referrer(&a));
            !attestation
                && r.artifact_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
        });
        'referrers: for r in bundle_referrers.take(MAX_REFERRERS) {
            let Ok(d) = r.digest.parse::<Digest>() else {
                continue;
            };
            let Some(m) = self.meta.get_manifest(repo, &Reference::Digest(d)).await? else {
                continue;
            };
            for (layer, _) in bundle_layers(&m.content) {
                if bundles.len() == MAX_SIGNATURES {
                    break 'referrers;
                }
                if let Some(bundle) = self.signature_blob(repo, &layer).await? {
                    let names_repo = || {
                        bundle_subject_names(&bundle)
                            .iter()
                            .any(|n| reference_names_repository(n, repo))
                    };
                    if !match_reference || names_repo() {
                        bundles.push(bundle);
                    }
                }
            }
        }
        let (image_owned, keys_owned) = (image.clone(), keys.to_vec());
        let verdict = self
            .off_thread("signature check", move || {
                let (image, keys) = (&image_owned, &keys_owned[..]);
                tagged
                    .iter()
                    .find_map(|(c, payload)| signer(image, c, payload, keys))
                    .or_else(|| bundles.iter().find_map(|b| bundle_signer(image, b, keys)))
                    .map_or(Signed::Unverified, |k| Signed::By(k.id.clone()))
            })
            .await?;
        self.pull_rules.verdicts.put(fingerprint, verdict.clone());
        Ok(verdict)
    }

    /// Runs `check` (signature work) on the blocking pool, two at a time.
    /// The permit goes with the work: a caller that gives up (a client
    /// gone, an admission deadline) does not free it while it runs.
    async fn off_thread<T: Send + 'static>(
        &self,
        what: &str,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, RegistryError> {
        let permit = self
            .pull_rules
            .checking
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check()
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("{what}: {e}")))
    }

    /// A small blob of `repo` (a signature payload or bundle), if it is
    /// there and small enough to be one.
    async fn signature_blob(&self, repo: &str, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        self.small_blob(repo, digest, MAX_PAYLOAD).await
    }

    /// A blob of `repo` of at most `max` bytes, if it is there.
    async fn small_blob(&self, repo: &str, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.meta.blob_in_repo(repo, digest).await? {
            Some(size) if size <= max => Ok(tokio::fs::read(self.store.blob_path(digest)).await.ok()),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refusing_rule;

    #[test]
    fn the_log_names_the_refusing_rule() {
        let table = [
            (
                "sha256:ab in a/b: pull rule deny_severity high: the image has 1 critical",
                "deny_severity",
            ),
            (
                "sha256:ab in a/b: pull rule deny_unscanned: the image has never been scanned",
                "deny_unscanned",
            ),
            (
                "sha256:ab in a/b: pull rule require_signed_by (team ci/gitlab): the image is not signed",
                "require_signed_by",
            ),
            (
                "sha256:ab in a/b: pull rule max_database_age: there is no vulnerability database",
                "max_database_age",
            ),
            (
                "sha256:ab in a/b: the namespace pull rule over a/b is unreadable (eof)",
                "unreadable",
            ),
            ("something else", "unknown"),
        ];
        for (why, rule) in table {
            assert_eq!(refusing_rule(why), rule, "{why}");
        }
    }
}
