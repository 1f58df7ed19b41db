//! cosign's signatures on a manifest in a remote registry, in both of its
//! forms: the `sha256-<hex>.sig` tag (simple-signing payloads) and the
//! sigstore bundle referrer. Written by `portcullis sign` and
//! `portcullis db push --key`; checked by `portcullis verify` and
//! `portcullis db pull` (and `serve`'s scheduled pull), so all of them
//! sign and verify the same way. The cryptography is `portcullis-sign`'s.

use portcullis_oci::{media_type, Digest};
use portcullis_sign::{
    bundle_layers, bundle_manifest, bundle_signer, candidates, payload, signature_manifest_adding, signature_tag,
    signer, PublicKey, SigningKey, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_ANNOTATION, COSIGN_SIGN_PREDICATE, EMPTY_CONFIG,
};

use crate::{ManifestHead, RegistryClient, Result};

/// Signature payloads and bundles are a few KiB; anything bigger is not one.
pub const MAX_SIGNATURE_BLOB: usize = 1 << 20;

/// Signatures of each form examined at most (as the server's signed-only
/// pulls): whatever a registry lists, the work stays bounded.
const MAX_EXAMINED: usize = 32;

/// Which of cosign's two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureForm {
    /// `sha256-<hex>.sig` tag with simple-signing payloads (cosign 2).
    Tag,
    /// A sigstore bundle attached as an OCI 1.1 referrer (cosign 3).
    Bundle,
}

impl SignatureForm {
    pub fn name(self) -> &'static str {
        match self {
            SignatureForm::Tag => "tag",
            SignatureForm::Bundle => "bundle",
        }
    }
}

/// A signature written.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The manifest signed.
    pub digest: Digest,
    /// Where the signature is: the tag, or the referrer manifest's digest.
    pub signature: String,
}

/// What the signatures on a manifest say under a set of keys.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The signatures that verified: the key's id and the form.
    pub verified: Vec<(String, SignatureForm)>,
    /// Signatures found that verify under none of the keys.
    pub unverified: usize,
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        !self.verified.is_empty()
    }

    /// Why the manifest is not verified (`None` when it is), given how
    /// many keys were trusted.
    pub fn refusal(&self, keys: usize) -> Option<String> {
        match (self.is_verified(), keys, self.unverified) {
            (true, _, _) => None,
            (false, 0, _) => Some("no trusted key to verify with".to_string()),
            (false, _, 0) => Some("it has no signatures (unsigned)".to_string()),
            (false, _, n) => Some(format!(
                "none of its {n} signature(s) verifies under a trusted key (signed by an unknown key)"
            )),
        }
    }
}

impl RegistryClient {
    /// Signs the manifest `reference` names with `key`, in `form`.
    /// `name` (`host/repository`) is what a tag-form payload says was
    /// signed; `created` (RFC 3339) dates a bundle's referrer. Signatures
    /// already there stay: a second signer adds a layer (tag form) or a
    /// referrer (bundle form).
    pub async fn sign(
        &self,
        name: &str,
        reference: &str,
        key: &SigningKey,
        form: SignatureForm,
        created: &str,
    ) -> Result<Signed> {
        let (config, m) = self.config_and_head(reference).await?;
        let signature = match form {
            SignatureForm::Tag => {
                let body = payload(name, &m.digest);
                let sig = key.sign(&body)?;
                let p = self.push_blob(&body).await?;
                let tag = signature_tag(&m.digest);
                let kept = match self.manifest_if_exists(&tag).await? {
                    Some(existing) => candidates(&existing.bytes),
                    None => Vec::new(),
                };
                let manifest = signature_manifest_adding(kept, &config, 2, (p, body.len(), sig));
                self.put_manifest(&tag, media_type::OCI_MANIFEST, &manifest).await?;
                tag
            }
            SignatureForm::Bundle => {
                let bundle = portcullis_sign::sign_bundle(key, &m.digest)?;
                self.push_bundle(&m, &bundle, COSIGN_SIGN_PREDICATE, created).await?
            }
        };
        Ok(Signed {
            digest: m.digest,
            signature,
        })
    }

    /// Checks every signature on the manifest `digest` in both forms (the
    /// `.sig` tag; the referrers, through the API or its tag schema)
    /// against `keys`, at most 32 of each form. Only a signature
    /// that verifies counts: the presence of one is never enough.
    pub async fn verify_signatures(&self, digest: &Digest, keys: &[PublicKey]) -> Result<Verdict> {
        let mut verdict = Verdict::default();
        let mut record = |key: Option<&PublicKey>, form: SignatureForm| match key {
            Some(k) => verdict.verified.push((k.id.clone(), form)),
            None => verdict.unverified += 1,
        };
        if let Some(sig) = self.manifest_if_exists(&signature_tag(digest)).await? {
            for c in candidates(&sig.bytes).into_iter().take(MAX_EXAMINED) {
                if c.size as usize > MAX_SIGNATURE_BLOB {
                    record(None, SignatureForm::Tag);
                    continue;
                }
                let body = self.blob(&c.payload, MAX_SIGNATURE_BLOB).await?;
                record(signer(digest, &c, &body, keys), SignatureForm::Tag);
            }
        }
        // An attestation's bundle (another predicate) is not a signature.
        let referrers = self
            .bundle_referrers(digest)
            .await?
            .into_iter()
            .filter(|(_, claimed)| claimed.as_deref().is_none_or(|t| t == COSIGN_SIGN_PREDICATE));
        for (referrer, _) in referrers.take(MAX_EXAMINED) {
            for bundle in self.referrer_bundles(&referrer, MAX_SIGNATURE_BLOB).await? {
                record(
                    bundle.ok().and_then(|b| bundle_signer(digest, &b, keys)),
                    SignatureForm::Bundle,
                );
            }
        }
        Ok(verdict)
    }

    /// Before a signature or an attestation is written: the empty config
    /// both forms need goes first, so the credentials in hand carry push;
    /// then a HEAD names the digest: a registry whose pull rules refuse the
    /// unsigned image its body still lets a pusher sign it.
    pub(crate) async fn config_and_head(&self, reference: &str) -> Result<(Digest, ManifestHead)> {
        let config = self.push_blob(b"{}").await?;
        Ok((config, self.manifest_head(reference).await?))
    }

    /// Pushes `bundle` and attaches it to the manifest `m` as a referrer
    /// annotated with its statement's `predicate_type`, as cosign 3 does:
    /// the referrer manifest's digest.
    pub(crate) async fn push_bundle(
        &self,
        m: &ManifestHead,
        bundle: &[u8],
        predicate_type: &str,
        created: &str,
    ) -> Result<String> {
        let b = self.push_blob(bundle).await?;
        let media_type = m.media_type.clone().unwrap_or_else(|| media_type::OCI_MANIFEST.into());
        let manifest = bundle_manifest(
            (&media_type, &m.digest, m.size),
            (&b, bundle.len()),
            predicate_type,
            created,
        );
        Ok(self
            .put_referrer(&manifest, &m.digest, BUNDLE_MEDIA_TYPE)
            .await?
            .to_string())
    }

    /// The referrers of `digest` that may hold sigstore bundles (their
    /// manifests' digests) with the predicate type each claims by
    /// annotation; the caller bounds how many it reads. Some registries
    /// list a bundle under its config's type (the empty one), so the
    /// artifact type filters loosely and the layers decide.
    pub(crate) async fn bundle_referrers(&self, digest: &Digest) -> Result<Vec<(String, Option<String>)>> {
        Ok(self
            .referrers(digest, None)
            .await?
            .iter()
            .filter(|r| {
                let kind = r["artifactType"].as_str().unwrap_or(EMPTY_CONFIG);
                kind == BUNDLE_MEDIA_TYPE || kind == EMPTY_CONFIG
            })
            .filter_map(|r| {
                let claimed = r["annotations"][BUNDLE_PREDICATE_ANNOTATION].as_str();
                Some((r["digest"].as_str()?.to_string(), claimed.map(str::to_string)))
            })
            .collect())
    }

    /// The bundles the referrer manifest `referrer` holds: each layer's
    /// bytes, or its declared size when that is past `max` (not read).
    pub(crate) async fn referrer_bundles(&self, referrer: &str, max: usize) -> Result<Vec<Result<Vec<u8>, u64>>> {
        let manifest = self.manifest(referrer).await?;
        let mut out = Vec::new();
        for (layer, size) in bundle_layers(&manifest.bytes) {
            out.push(match size as usize > max {
                true => Err(size),
                false => Ok(self.blob(&layer, max).await?),
            });
        }
        Ok(out)
    }
}
