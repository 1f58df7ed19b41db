//! `require_provenance`, in pull rules (and so admission) and promotion
//! policies: an image passes when a SLSA provenance attestation (v0.2 or
//! v1) about it, in either of cosign's forms (a DSSE envelope layer of the
//! `sha256-<hex>.att` manifest, or a sigstore bundle referrer), verifies
//! under a current key of the named signers and names a builder and a
//! source that match the rule's globs. `portcullis-sign` decides each
//! envelope; this reads them from the repository, bounded like signature
//! checks: at most [`MAX_ENVELOPES`] of each form, envelopes of at most
//! [`MAX_ENVELOPE`] bytes, the ECDSA work on the blocking pool under the
//! same two permits, verdicts cached by a fingerprint of everything they
//! depend on (an attestation pushed or deleted is a new fingerprint).

use portcullis_oci::{Digest, Reference};
use portcullis_policy::RequireProvenance;
use portcullis_sign::attestation::{
    attestation_layers, attestation_tag, read_bundle_envelope, read_envelope, verify_attestation_by_rule,
    ProvenanceRule, Rejection, SLSA_PROVENANCE,
};
use portcullis_sign::{bundle_key_hint, bundle_layers, reference_names_repository, BUNDLE_PREDICATE_ANNOTATION};

use crate::{Registry, RegistryError};

/// Envelopes of each form examined per image.
const MAX_ENVELOPES: usize = 32;
/// Referrers read per image while looking for attestation bundles.
const MAX_REFERRERS: usize = 64;
/// The largest envelope or bundle read (provenance is a few KiB).
const MAX_ENVELOPE: u64 = 1 << 20;

/// One envelope to judge: the envelope, the key hint beside it (the `.att`
/// layer's annotation, the bundle's verification material), whether it
/// came in a bundle (which must hold exactly one signature).
type Candidate = (serde_json::Value, Option<String>, bool);

impl Registry {
    /// `Ok(Ok(key id))` when a provenance attestation of `digest` in `repo`
    /// satisfies `rule`; `Ok(Err)` names what was missing: no attestation,
    /// an untrusted signer, a wrong builder or source, a subject mismatch,
    /// a tampered envelope. `saved_at`: when the rule was saved (signers
    /// created after it are not trusted, as for `require_signed_by`).
    pub(crate) async fn provenance_verdict(
        &self,
        repo: &str,
        digest: &str,
        rule: &RequireProvenance,
        saved_at: Option<i64>,
    ) -> Result<Result<String, String>, RegistryError> {
        let keys = match self.signers_keys(&rule.signed_by, saved_at).await? {
            Ok(keys) => keys,
            Err(why) => return Ok(Err(why)),
        };
        let globs = match ProvenanceRule::new(&rule.builder_ids, &rule.source_uris) {
            Ok(g) => g,
            // Checked when saved; a stored rule that no longer compiles refuses.
            Err(e) => return Ok(Err(format!("the rule's globs do not compile: {e}"))),
        };
        let image: Digest = digest.parse()?;
        let att = self
            .meta
            .get_manifest(repo, &Reference::Tag(attestation_tag(&image)))
            .await?;
        // Bundle referrers that are or may be provenance: the annotation
        // only saves reading the others; the signed statement decides.
        let referrers: Vec<_> = self
            .meta
            .referrers(repo, &image, None)
            .await?
            .into_iter()
            .filter(|r| {
                r.artifact_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
            })
            .filter(|r| {
                let claimed = r
                    .annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                    .and_then(|a| a[BUNDLE_PREDICATE_ANNOTATION].as_str().map(str::to_string));
                claimed.is_none_or(|t| SLSA_PROVENANCE.contains(&t.as_str()))
            })
            .take(MAX_REFERRERS)
            .collect();
        let layers: Vec<_> = att
            .as_ref()
            .map(|m| attestation_layers(&m.content))
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.claimed.as_deref().is_none_or(|t| SLSA_PROVENANCE.contains(&t)))
            .take(MAX_ENVELOPES)
            .collect();
        if layers.is_empty() && referrers.is_empty() {
            return Ok(Err(format!(
                "no attestation: no SLSA provenance in {} or in an attestation referrer",
                attestation_tag(&image)
            )));
        }
        if keys.is_empty() {
            return Ok(Err("untrusted signer: no current key belongs to them".into()));
        }
        let fingerprint = {
            let mut parts = vec![
                repo.to_string(),
                image.to_string(),
                att.as_ref().map_or("-".into(), |m| m.digest.clone()),
                serde_json::to_string(rule).expect("json"),
            ];
            parts.extend(referrers.iter().map(|r| r.digest.clone()));
            parts.extend(keys.iter().map(|k| k.id.clone()));
            Digest::sha256_of(parts.join("\n").as_bytes()).to_string()
        };
        if let Some(verdict) = self.pull_rules.provenance.get(&fingerprint) {
            return Ok(verdict);
        }
        // Read (I/O), then judge (CPU) apart.
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut unreadable = 0;
        for layer in &layers {
            match self.small_blob(repo, &layer.digest, MAX_ENVELOPE).await? {
                Some(bytes) => match read_envelope(&bytes) {
                    Some(env) => candidates.push((env, layer.hint.clone(), false)),
                    None => unreadable += 1,
                },
                None => unreadable += 1,
            }
        }
        let mut bundles = 0;
        'referrers: for r in &referrers {
            let Ok(d) = r.digest.parse::<Digest>() else {
                continue;
            };
            let Some(m) = self.meta.get_manifest(repo, &Reference::Digest(d)).await? else {
                continue;
            };
            for (layer, _) in bundle_layers(&m.content) {
                if bundles == MAX_ENVELOPES {
                    break 'referrers;
                }
                bundles += 1;
                match self.small_blob(repo, &layer, MAX_ENVELOPE).await? {
                    Some(bytes) => match read_bundle_envelope(&bytes) {
                        Some(env) => candidates.push((env, bundle_key_hint(&bytes), true)),
                        None => unreadable += 1,
                    },
                    None => unreadable += 1,
                }
            }
        }
        let (repo_owned, match_reference) = (repo.to_string(), rule.signed_by.match_reference);
        let verdict = self
            .off_thread("provenance check", move || {
                let found = (&candidates[..], unreadable);
                judge(&image, found, &keys, &globs, &repo_owned, match_reference)
            })
            .await?;
        self.pull_rules.provenance.put(fingerprint, verdict.clone());
        Ok(verdict)
    }
}

/// The first candidate that passes (its key id), or every reason none did.
fn judge(
    image: &Digest,
    (candidates, unreadable): (&[Candidate], usize),
    keys: &[portcullis_sign::PublicKey],
    globs: &ProvenanceRule,
    repo: &str,
    match_reference: bool,
) -> Result<String, String> {
    let mut reasons: Vec<String> = Vec::new();
    let mut other_types = 0;
    for (envelope, hint, in_bundle) in candidates {
        let wanted = (&SLSA_PROVENANCE[..], globs);
        match verify_attestation_by_rule(image, envelope, keys, wanted, *in_bundle, hint.as_deref()) {
            Ok((key, statement)) => {
                // One subject entry must carry both this image's digest and
                // a name of this repository: a statement about several
                // artifacts must not lend one's name to another's digest.
                let names_repo = || {
                    statement.value["subject"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|s| s["digest"][image.algorithm().as_str()] == image.hex())
                        .filter_map(|s| s["name"].as_str())
                        .any(|n| reference_names_repository(n, repo))
                };
                if !match_reference || names_repo() {
                    return Ok(key.id.clone());
                }
                reasons.push(format!("subject mismatch: its subject does not name {repo}"));
            }
            Err(Rejection::OtherType(_)) => other_types += 1,
            Err(Rejection::Untrusted) => reasons.push(
                "untrusted signer: its signature verifies under no current key of theirs (another signer, or an envelope changed after signing)".into(),
            ),
            Err(r) => reasons.push(r.to_string()),
        }
    }
    if unreadable > 0 {
        reasons.push(format!("{unreadable} envelope(s) missing, too large or not JSON"));
    }
    if reasons.is_empty() {
        return Err(format!(
            "no attestation: no SLSA provenance attestation ({other_types} of other types)"
        ));
    }
    let total = reasons.len();
    reasons.sort();
    reasons.dedup();
    Err(format!(
        "none of {total} provenance attestation(s) passes: {}",
        reasons.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sign::attestation::{envelope, SLSA_PROVENANCE_V1};
    use serde_json::json;

    /// With `match_reference`, one subject entry must carry both the
    /// image's digest and this repository's name: a trusted statement
    /// about two artifacts does not lend one's name to the other's digest.
    #[test]
    fn a_subject_names_the_repository_with_the_images_own_digest() {
        let (key, _) = portcullis_sign::SigningKey::generate().unwrap();
        let (app, other) = (Digest::sha256_of(b"app"), Digest::sha256_of(b"other"));
        let entry = |name: &str, d: &Digest| json!({"name": name, "digest": {"sha256": d.hex()}});
        let statement = |subjects: Vec<serde_json::Value>| {
            let s = json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": subjects,
                "predicateType": SLSA_PROVENANCE_V1,
                "predicate": {"buildDefinition": {"buildType": "x", "externalParameters": {}},
                              "runDetails": {"builder": {"id": "https://ci.example/b"}}},
            });
            envelope(&key, &serde_json::to_vec(&s).unwrap()).unwrap()
        };
        let rule = ProvenanceRule::new(&[], &[]).unwrap();
        let keys = [key.public.clone()];
        // (what, subjects, image checked in acme/app, passes)
        let table = [
            ("its own entry", vec![entry("reg.example/acme/app", &app)], &app, true),
            (
                "the name on another artifact's entry",
                vec![
                    entry("reg.example/acme/app", &app),
                    entry("reg.example/acme/other", &other),
                ],
                &other,
                false,
            ),
            (
                "another repository's name",
                vec![entry("reg.example/acme/other", &app)],
                &app,
                false,
            ),
        ];
        for (what, subjects, image, passes) in table {
            let candidates = [(statement(subjects), None, false)];
            let verdict = judge(image, (&candidates[..], 0), &keys, &rule, "acme/app", true);
            assert_eq!(verdict.is_ok(), passes, "{what}: {verdict:?}");
        }
    }
}
