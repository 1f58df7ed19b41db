//! in-toto attestations on a manifest in a remote registry, in cosign's two
//! forms: DSSE envelope layers of the `sha256-<hex>.att` tag's manifest, and
//! sigstore bundles attached as referrers. Written by `portcullis attest`,
//! checked by `portcullis verify-attestation`. What a statement says and
//! whether its signature holds are `portcullis-sign`'s to decide.

use portcullis_oci::{media_type, Digest};
use portcullis_sign::attestation::{
    attestation_layers, attestation_manifest_adding, attestation_tag, claimed_predicate_type, envelope,
    verify_attestation_by_rule, ProvenanceRule, Rejection,
};
use portcullis_sign::{
    bundle_envelope, bundle_key_hint, sign_statement_bundle, PublicKey, SigningKey, COSIGN_SIGN_PREDICATE,
};

use crate::{RegistryClient, Result, SignatureForm, Signed};

/// SBOMs attested can be large; an envelope past this is not read.
pub const MAX_ATTESTATION_BLOB: usize = 32 << 20;

/// Attestations of each form examined at most, whatever a registry lists.
const MAX_EXAMINED: usize = 64;

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

    fn judge(
        &mut self,
        image: &Digest,
        envelope: &serde_json::Value,
        keys: &[PublicKey],
        wanted: (&str, &ProvenanceRule),
        form: SignatureForm,
        hint: Option<&str>,
    ) {
        let (predicate_type, rule) = wanted;
        let one_signature = form == SignatureForm::Bundle;
        match verify_attestation_by_rule(image, envelope, keys, (&[predicate_type], rule), one_signature, hint) {
            Ok((key, statement)) => self.verified.push(VerifiedAttestation {
                key_id: key.id.clone(),
                form,
                statement: statement.value,
            }),
            Err(Rejection::Unmet(why)) => self.refused.push(why),
            Err(Rejection::OtherType(_)) => self.other_types += 1,
            // An envelope that does not verify tells its type only by what
            // it claims: counted where it claims to belong.
            Err(r) => match claimed_predicate_type(envelope) {
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
                    Some(&key.public.hint()),
                );
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
        if let Some(att) = self.manifest_if_exists(&attestation_tag(digest)).await? {
            let layers = attestation_layers(&att.bytes);
            for layer in layers.into_iter().take(MAX_EXAMINED) {
                let size = layer.size;
                // The annotation only saves reading what claims another
                // type; the signed statement decides.
                if layer.claimed.as_deref().is_some_and(|t| t != predicate_type) {
                    verdict.other_types += 1;
                    continue;
                }
                if size as usize > MAX_ATTESTATION_BLOB {
                    verdict.refused.push(format!("an envelope of {size} bytes is not read"));
                    continue;
                }
                let bytes = self.blob(&layer.digest, MAX_ATTESTATION_BLOB).await?;
                let hint = layer.hint.as_deref();
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(env) => verdict.judge(digest, &env, keys, wanted, SignatureForm::Tag, hint),
                    Err(e) => verdict.refused.push(format!("an envelope that is not JSON ({e})")),
                }
            }
        }
        let mut examined = 0;
        for (referrer, claimed) in self.bundle_referrers(digest).await? {
            match claimed.as_deref() {
                Some(COSIGN_SIGN_PREDICATE) => continue,
                Some(t) if t != predicate_type => {
                    verdict.other_types += 1;
                    continue;
                }
                _ if examined == MAX_EXAMINED => break,
                _ => examined += 1,
            }
            for bundle in self.referrer_bundles(&referrer, MAX_ATTESTATION_BLOB).await? {
                match bundle.map(|b| (bundle_envelope(&b), bundle_key_hint(&b))) {
                    Ok((Some(env), hint)) => {
                        verdict.judge(digest, &env, keys, wanted, SignatureForm::Bundle, hint.as_deref())
                    }
                    Ok((None, _)) => verdict.refused.push("a bundle that is not a sigstore bundle".into()),
                    Err(size) => verdict.refused.push(format!("a bundle of {size} bytes is not read")),
                }
            }
        }
        Ok(verdict)
    }
}
