//! Signatures in the OCI 1.1 referrer form cosign 3 writes by default: a
//! sigstore bundle (v0.3) holding a DSSE envelope over an in-toto
//! statement whose subject is the image digest and whose predicate type is
//! cosign's "sign" predicate, stored as the one layer of a manifest whose
//! `subject` is the image and whose `artifactType` is the bundle's media type.
//!
//! Only the key-based form is read and written (a public-key hint, no
//! certificate, no transparency-log entry): Portcullis decides trust by the
//! keys a policy names, not by a Fulcio identity.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use portcullis_oci::Digest;
use serde_json::json;

use crate::attestation::{verify_attestation, STATEMENTS};
use crate::{PublicKey, SignError, SigningKey};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The referrer manifest's annotation naming its statement's predicate type.
pub const BUNDLE_PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// The OCI empty descriptor's media type; its content is `{}`.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// More bundle layers than any honest referrer manifest carries: the rest
/// are ignored.
const MAX_BUNDLE_LAYERS: usize = 16;

/// The in-toto statement cosign signs for an image.
pub fn statement(image: &Digest) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": STATEMENTS[0],
        "subject": [{"digest": {image.algorithm().as_str(): image.hex()}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }))
    .expect("json")
}

/// A sigstore bundle signing `image` with `key`, as `cosign sign --key`
/// writes it with the new bundle format and no transparency log.
pub fn sign_bundle(key: &SigningKey, image: &Digest) -> Result<Vec<u8>, SignError> {
    sign_statement_bundle(key, &statement(image))
}

/// A sigstore bundle holding `statement` (an in-toto statement's bytes) in
/// a DSSE envelope signed by `key`: a signature (cosign's sign predicate)
/// or an attestation (any other).
pub fn sign_statement_bundle(key: &SigningKey, statement: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut envelope = crate::attestation::envelope(key, statement)?;
    // A bundle's signature carries no key id: the hint names the key.
    envelope["signatures"][0]
        .as_object_mut()
        .expect("an object")
        .remove("keyid");
    Ok(serde_json::to_vec(&json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        // An empty transparency log list, not none: Python's sigstore-models
        // refuses a bundle without the field.
        "verificationMaterial": {"publicKey": {"hint": key.public.hint()}, "tlogEntries": []},
        "dsseEnvelope": envelope,
    }))
    .expect("json"))
}

/// The DSSE envelope of a sigstore bundle, if `bundle` is one.
pub fn bundle_envelope(bundle: &[u8]) -> Option<serde_json::Value> {
    crate::attestation::read_bundle_envelope(bundle)
}

/// The names the statement in `bundle` gives its subjects (cosign may give
/// the repository there); empty when it gives none.
pub fn bundle_subject_names(bundle: &[u8]) -> Vec<String> {
    let statement = serde_json::from_slice::<serde_json::Value>(bundle)
        .ok()
        .and_then(|b| B64.decode(b["dsseEnvelope"]["payload"].as_str()?).ok())
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok());
    statement
        .as_ref()
        .and_then(|s| s["subject"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

/// The key (among `keys`) whose signature in `bundle` binds it to `image`:
/// an in-toto statement of cosign's sign predicate naming the image's digest.
/// The envelope must hold exactly one signature, as the bundle spec says
/// and sigstore-js enforces; any other count is not verified.
pub fn bundle_signer<'a>(image: &Digest, bundle: &[u8], keys: &'a [PublicKey]) -> Option<&'a PublicKey> {
    let envelope = bundle_envelope(bundle)?;
    let (key, _) = verify_attestation(image, &envelope, keys, COSIGN_SIGN_PREDICATE, true).ok()?;
    Some(key)
}

/// Whether a referrer's annotations say that its bundle is an attestation
/// (a predicate type other than cosign's sign one): never a signature, so
/// not one to spend a bound on signatures with.
pub fn is_attestation_referrer(annotations: &serde_json::Value) -> bool {
    annotations[BUNDLE_PREDICATE_ANNOTATION]
        .as_str()
        .is_some_and(|t| t != COSIGN_SIGN_PREDICATE)
}

/// The digest and size of the OCI empty descriptor (`{}`).
fn empty_config() -> (Digest, usize) {
    (Digest::sha256_of(b"{}"), 2)
}

/// The referrer manifest that attaches a bundle to `subject` (the image's
/// media type, digest and size), as cosign 3 pushes it; `predicate_type` is
/// its statement's (cosign's sign predicate for a signature).
pub fn bundle_manifest(
    subject: (&str, &Digest, u64),
    bundle: (&Digest, usize),
    predicate_type: &str,
    created: &str,
) -> Vec<u8> {
    let (config, config_size) = empty_config();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": config.as_str(), "size": config_size},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": bundle.0.as_str(), "size": bundle.1}],
        "subject": {"mediaType": subject.0, "digest": subject.1.as_str(), "size": subject.2},
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            BUNDLE_PREDICATE_ANNOTATION: predicate_type,
            "org.opencontainers.image.created": created,
        },
    }))
    .expect("json")
}

/// The bundle layers of a referrer manifest (digest and size each).
pub fn bundle_layers(manifest: &[u8]) -> Vec<(Digest, u64)> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["mediaType"]
                .as_str()
                .is_some_and(|t| t.starts_with("application/vnd.dev.sigstore.bundle"))
        })
        .filter_map(|l| Some((l["digest"].as_str()?.parse().ok()?, l["size"].as_u64()?)))
        .take(MAX_BUNDLE_LAYERS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::{pae, IN_TOTO_PAYLOAD_TYPE};

    #[test]
    fn bundles_verify_only_for_their_image_key_and_predicate() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let image = Digest::sha256_of(b"image");
        let bundle = sign_bundle(&key, &image).unwrap();
        let keys = [other.public.clone(), key.public.clone()];
        assert_eq!(
            bundle_signer(&image, &bundle, &keys).map(|k| &k.id),
            Some(&key.public.id)
        );
        assert!(bundle_signer(&image, &bundle, std::slice::from_ref(&other.public)).is_none());
        assert!(bundle_signer(&Digest::sha256_of(b"other"), &bundle, &keys).is_none());
        let v: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        assert_eq!(
            v["verificationMaterial"]["tlogEntries"],
            json!([]),
            "sigstore-models wants the field"
        );

        // A statement of another predicate (an attestation), signed by the
        // same key, is not a signature of the image.
        let mut v: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        let mut s: serde_json::Value = serde_json::from_slice(&statement(&image)).unwrap();
        s["predicateType"] = "https://slsa.dev/provenance/v1".into();
        let body = serde_json::to_vec(&s).unwrap();
        let sig = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &body)).unwrap();
        v["dsseEnvelope"]["payload"] = B64.encode(&body).into();
        v["dsseEnvelope"]["signatures"][0]["sig"] = B64.encode(&sig).into();
        assert!(bundle_signer(&image, &serde_json::to_vec(&v).unwrap(), &keys).is_none());

        // A payload changed after signing.
        let mut v: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        let tampered = String::from_utf8(statement(&image))
            .unwrap()
            .replace("\"predicate\":{}", "\"predicate\":{\"x\":1}");
        v["dsseEnvelope"]["payload"] = B64.encode(tampered).into();
        assert!(bundle_signer(&image, &serde_json::to_vec(&v).unwrap(), &keys).is_none());
        assert!(bundle_signer(&image, b"not json", &keys).is_none());
    }

    #[test]
    fn an_envelope_holds_exactly_one_signature() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let image = Digest::sha256_of(b"image");
        let body = statement(&image);
        let good = B64.encode(key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &body)).unwrap());
        let foreign = B64.encode(other.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &body)).unwrap());
        let keys = [key.public.clone()];
        // (signatures in the envelope, verified)
        let table: [(Vec<&str>, bool); 6] = [
            (vec![&good], true),
            (vec![], false),
            (vec![&good, &good], false),
            (vec![&foreign, &good], false),
            (vec![&good, &foreign], false),
            (vec![&foreign], false),
        ];
        let mut v: serde_json::Value = serde_json::from_slice(&sign_bundle(&key, &image).unwrap()).unwrap();
        for (sigs, verified) in table {
            v["dsseEnvelope"]["signatures"] = sigs.iter().map(|s| json!({"sig": s})).collect();
            let found = bundle_signer(&image, &serde_json::to_vec(&v).unwrap(), &keys);
            assert_eq!(found.is_some(), verified, "{} signatures: {sigs:?}", sigs.len());
        }
        // Not a list at all.
        v["dsseEnvelope"]["signatures"] = json!({"sig": good});
        assert!(bundle_signer(&image, &serde_json::to_vec(&v).unwrap(), &keys).is_none());
    }

    #[test]
    fn the_referrer_manifest_names_its_subject_and_layer() {
        let image = Digest::sha256_of(b"image");
        let b = Digest::sha256_of(b"bundle");
        let m = bundle_manifest(
            ("application/vnd.oci.image.manifest.v1+json", &image, 7),
            (&b, 6),
            COSIGN_SIGN_PREDICATE,
            "2026-12-04T00:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["subject"]["digest"], image.as_str());
        assert_eq!(v["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(bundle_layers(&m), [(b, 6)]);
    }
}
