//! in-toto attestations on a manifest in a remote registry, in cosign's two
//! forms: DSSE envelope layers of the `sha256-<hex>.att` tag's manifest, and
//! sigstore bundles attached as referrers. Written by `portcullis attest`,
//! checked by `portcullis verify-attestation`. What a statement says and
//! whether its signature holds are `portcullis-sign`'s to decide.

use portcullis_oci::{media_type, Digest};
use portcullis_sign::attestation::{
    attestation_layers, attestation_manifest_adding, attestation_tag, envelope, read_bundle_envelope, read_envelope,
    verify_attestation, ProvenanceRule, Rejection,
};
use portcullis_sign::{bundle_layers, sign_statement_bundle, PublicKey, SigningKey, COSIGN_SIGN_PREDICATE};

use crate::{RegistryClient, Result, SignatureForm, Signed};

/// SBOMs attested can be large; an envelope past this is not read.
pub const MAX_ATTESTATION_BLOB: usize = 32 << 20;

/// Attestations of each form examined at most, whatever a registry lists
/// (those that say they are of another type are not counted).
const MAX_EXAMINED: usize = 64;

/// Envelope and bundle bytes one verification reads at most: a pusher can
/// list many large ones, and a verifier in CI must end in bounded memory
/// and time.
const MAX_EXAMINED_BYTES: u64 = 128 << 20;

/// One attestation that verified and satisfied the rule.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    pub key_id: String,
    pub form: SignatureForm,
    /// The statement, as signed.
    pub statement: serde_json::Value,
}

/// What the attestations of one predicate type on a manifest say.
#[derive(Debug, Clone, Default)]
pub struct AttestationVerdict {
    pub verified: Vec<VerifiedAttestation>,
    /// Why each attestation of the type asked for (as far as it could be
    /// told) did not count.
    pub refused: Vec<String>,
    /// Attestations of other predicate types, not examined further.
    pub other_types: usize,
}

impl AttestationVerdict {
    pub fn is_verified(&self) -> bool {
        !self.verified.is_empty()
    }

    /// Why nothing verified (`None` when something did).
    pub fn refusal(&self, predicate_type: &str, keys: usize) -> Option<String> {
        if self.is_verified() {
            return None;
        }
        if keys == 0 {
            return Some("no trusted key to verify with".into());
        }
        if self.refused.is_empty() {
            let others = match self.other_types {
                0 => String::new(),
                n => format!(" ({n} of other types)"),
            };
            return Some(format!("no attestation of type {predicate_type}{others}"));
        }
        let mut reasons = self.refused.clone();
        reasons.dedup();
        Some(format!(
            "none of its {} attestation(s) of type {predicate_type} passes: {}",
            self.refused.len(),
            reasons.join("; ")
        ))
    }

    /// Whether `size` more bytes fit the verification's budget; a refusal
    /// says so once when they don't.
    fn spend(&mut self, budget: &mut u64, size: u64) -> bool {
        if size <= *budget {
            *budget -= size;
            return true;
        }
        if *budget > 0 {
            self.refused.push(format!(
                "more attestations than the {MAX_EXAMINED_BYTES} bytes one verification reads"
            ));
            *budget = 0;
        }
        false
    }

    /// Judges one envelope. `claimed` is the type its listing claims for it
    /// (an annotation): a refusal is counted under the type asked for
    /// unless it claims another. An unverified payload is never parsed.
    fn judge(
        &mut self,
        image: &Digest,
        envelope: &serde_json::Value,
        keys: &[PublicKey],
        wanted: (&str, &ProvenanceRule),
        form: SignatureForm,
        claimed: Option<&str>,
    ) {
        let (predicate_type, rule) = wanted;
        let one_signature = form == SignatureForm::Bundle;
        match verify_attestation(image, envelope, keys, predicate_type, one_signature) {
            Ok((key, statement)) => match rule.check(&statement) {
                Ok(()) => self.verified.push(VerifiedAttestation {
                    key_id: key.id.clone(),
                    form,
                    statement: statement.value,
                }),
                Err(why) => self.refused.push(why),
            },
            Err(Rejection::OtherType(_)) => self.other_types += 1,
            // An envelope that does not verify tells its type only by what
            // it claims: counted where it claims to belong.
            Err(r) => match claimed {
                Some(t) if t != predicate_type => self.other_types += 1,
                _ => self.refused.push(r.to_string()),
            },
        }
    }
}

impl RegistryClient {
    /// Attests the manifest `reference` names: `statement` (in-toto, about
    /// that manifest's digest, built by `statement(digest)`) signed by `key`,
    /// in `form`. Attestations already there stay: the `.att` manifest
    /// gains a layer, or one more referrer is attached.
    pub async fn attest(
        &self,
        reference: &str,
        predicate_type: &str,
        statement: impl FnOnce(&Digest) -> Vec<u8>,
        key: &SigningKey,
        form: SignatureForm,
        created: &str,
    ) -> Result<Signed> {
        let (config, m) = self.config_and_head(reference).await?;
        let body = statement(&m.digest);
        let signature = match form {
            SignatureForm::Tag => {
                let env = serde_json::to_vec(&envelope(key, &body)?).expect("json");
                let layer = self.push_blob(&env).await?;
                let tag = attestation_tag(&m.digest);
                let existing = self.manifest_if_exists(&tag).await?;
                let manifest = attestation_manifest_adding(
                    existing.as_ref().map(|e| e.bytes.as_slice()),
                    &config,
                    2,
                    (&layer, env.len(), predicate_type),
                )?;
                self.put_manifest(&tag, media_type::OCI_MANIFEST, &manifest).await?;
                tag
            }
            SignatureForm::Bundle => {
                let bundle = sign_statement_bundle(key, &body)?;
                self.push_bundle(&m, &bundle, predicate_type, created).await?
            }
        };
        Ok(Signed {
            digest: m.digest,
            signature,
        })
    }

    /// Reads one listed `.att` envelope or bundle (`layer`, its form, the
    /// type its listing claims) and judges it; one that can't be read or
    /// isn't one is a refusal of that entry, never of the others.
    async fn examine(
        &self,
        verdict: &mut AttestationVerdict,
        digest: &Digest,
        listed: (&Digest, SignatureForm, Option<&str>),
        keys: &[PublicKey],
        wanted: (&str, &ProvenanceRule),
    ) {
        let (layer, form, claimed) = listed;
        let (what, read): (&str, fn(&[u8]) -> Option<serde_json::Value>) = match form {
            SignatureForm::Tag => ("DSSE envelope", read_envelope),
            SignatureForm::Bundle => ("sigstore bundle", read_bundle_envelope),
        };
        match self.blob(layer, MAX_ATTESTATION_BLOB).await {
            Err(e) => verdict.refused.push(format!("{what} {layer}: {e}")),
            Ok(bytes) => match read(&bytes) {
                Some(env) => verdict.judge(digest, &env, keys, wanted, form, claimed),
                None => verdict.refused.push(format!("{layer} is not a {what}")),
            },
        }
    }

    /// Checks the attestations of `predicate_type` on the manifest `digest`
    /// in both forms against `keys` and `rule`: only a statement whose
    /// signature verifies under a key, whose subject is the manifest and
    /// which satisfies the rule counts.
    pub async fn verify_attestations(
        &self,
        digest: &Digest,
        keys: &[PublicKey],
        predicate_type: &str,
        rule: &ProvenanceRule,
    ) -> Result<AttestationVerdict> {
        let mut verdict = AttestationVerdict::default();
        let wanted = (predicate_type, rule);
        let mut budget = MAX_EXAMINED_BYTES;
        // One unreadable entry (a listed blob that is gone, a digest that
        // does not match) is a refusal of that entry, not of the others.
        if let Some(att) = self.manifest_if_exists(&attestation_tag(digest)).await? {
            let mut examined = 0;
            for (layer, size, claimed) in attestation_layers(&att.bytes) {
                // The annotation only saves reading what claims another
                // type; the signed statement decides.
                if claimed.as_deref().is_some_and(|t| t != predicate_type) {
                    verdict.other_types += 1;
                    continue;
                }
                if examined == MAX_EXAMINED {
                    break;
                }
                examined += 1;
                if size as usize > MAX_ATTESTATION_BLOB {
                    verdict.refused.push(format!("an envelope of {size} bytes is not read"));
                    continue;
                }
                if !verdict.spend(&mut budget, size) {
                    break;
                }
                let listed = (&layer, SignatureForm::Tag, claimed.as_deref());
                self.examine(&mut verdict, digest, listed, keys, wanted).await;
            }
        }
        let mut examined = 0;
        'referrers: for (referrer, claimed) in self.bundle_referrers(digest).await? {
            match claimed.as_deref() {
                Some(COSIGN_SIGN_PREDICATE) => continue,
                Some(t) if t != predicate_type => {
                    verdict.other_types += 1;
                    continue;
                }
                _ if examined == MAX_EXAMINED => break,
                _ => examined += 1,
            }
            let manifest = match self.manifest(&referrer).await {
                Ok(m) => m,
                Err(e) => {
                    verdict.refused.push(format!("referrer {referrer}: {e}"));
                    continue;
                }
            };
            // One layer read at a time, within the budget.
            for (layer, size) in bundle_layers(&manifest.bytes) {
                if size as usize > MAX_ATTESTATION_BLOB {
                    verdict.refused.push(format!("a bundle of {size} bytes is not read"));
                    continue;
                }
                if !verdict.spend(&mut budget, size) {
                    break 'referrers;
                }
                let listed = (&layer, SignatureForm::Bundle, claimed.as_deref());
                self.examine(&mut verdict, digest, listed, keys, wanted).await;
            }
        }
        Ok(verdict)
    }
}
