//! Image signatures as cosign writes them in its tag form: next to image
//! `sha256:<hex>` a manifest tagged `sha256-<hex>.sig` whose layers are
//! simple-signing payloads (`application/vnd.dev.cosign.simplesigning.v1+json`)
//! carrying their signature in the `dev.cosignproject.cosign/signature`
//! annotation: base64 of an ASN.1 DER ECDSA P-256 signature over the
//! payload's SHA-256. A payload binds the signature to one image through
//! `critical.image.docker-manifest-digest`. The OCI 1.1 referrer form
//! (a sigstore bundle) is in `bundle`; cosign's key files in `keyfile`;
//! in-toto attestations (DSSE envelopes, `.att` tags, SLSA provenance) in
//! `attestation`.
//!
//! Keys are ECDSA P-256 public keys in PEM (`-----BEGIN PUBLIC KEY-----`,
//! SubjectPublicKeyInfo), as `cosign generate-key-pair` writes `cosign.pub`.
//! Pure: the caller fetches manifests and blobs and passes bytes.

pub mod attestation;
mod bundle;
mod keyfile;

pub use bundle::{
    bundle_envelope, bundle_layers, bundle_manifest, bundle_signer, bundle_subject_names, is_attestation_referrer,
    sign_bundle, sign_statement_bundle, statement, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_ANNOTATION,
    COSIGN_SIGN_PREDICATE, EMPTY_CONFIG,
};
pub use keyfile::read_private_key;

use base64::Engine;
use portcullis_oci::Digest;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignError {
    #[error("not a PEM public key: {0}")]
    BadKey(String),
    #[error("not a simple-signing payload: {0}")]
    BadPayload(String),
    #[error("signing failed")]
    Signing,
    #[error(
        "cosign key file: scrypt parameters N={n} r={r} p={p} are refused: N must be a power of two \
         from 2 to {max_n}, r from 1 to {max_r} and p {max_p} (as cosign writes them: 32 MiB)",
        max_n = keyfile::MAX_SCRYPT_N,
        max_r = keyfile::MAX_SCRYPT_R,
        max_p = keyfile::MAX_SCRYPT_P
    )]
    ScryptLimit { n: u64, r: u32, p: u32 },
    #[error("the key's password is wrong (the key file does not decrypt with it)")]
    WrongPassword,
    #[error("unknown predicate type {0}")]
    UnknownPredicateType(String),
    #[error("bad predicate: {0}")]
    BadPredicate(String),
    #[error("not an in-toto statement: {0}")]
    BadStatement(String),
    #[error("the existing .att manifest is not an image manifest with layers; refusing to replace it: {0}")]
    UnreadableAttestations(String),
    #[error("bad glob {0}")]
    BadGlob(String),
}

/// The first PEM block of `text`: its label and decoded body.
pub(crate) fn pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    let mut lines = text.lines().map(str::trim);
    let label = lines.find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))?;
    let end = format!("-----END {label}-----");
    let body: String = lines.take_while(|l| *l != end).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    Some((label.to_string(), der))
}

/// The tag cosign stores an image's signatures under.
pub fn signature_tag(image: &Digest) -> String {
    format!("{}-{}.sig", image.algorithm().as_str(), image.hex())
}

/// Whether a tag is a signature tag (its manifest is a signature, not an image).
pub fn is_signature_tag(tag: &str) -> bool {
    tag.ends_with(".sig") && (tag.starts_with("sha256-") || tag.starts_with("sha512-"))
}

/// An ECDSA P-256 public key, from PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The uncompressed point (65 bytes), as ring verifies with it.
    point: Vec<u8>,
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: the key's id.
    pub id: String,
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo before its 65-byte point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<PublicKey, SignError> {
        let der = match pem_block(pem) {
            Some((label, der)) if label == "PUBLIC KEY" => der,
            Some((label, _)) => return Err(SignError::BadKey(format!("a {label} block, not a PUBLIC KEY"))),
            None => return Err(SignError::BadKey("no PUBLIC KEY block".into())),
        };
        if der.len() != 91 || der[..26] != P256_SPKI_PREFIX || der[26] != 0x04 {
            return Err(SignError::BadKey("only ECDSA P-256 keys (as cosign makes them)".into()));
        }
        Ok(PublicKey::from_point(&der[26..]))
    }

    /// The key of an uncompressed P-256 point; its id hashes the DER.
    fn from_point(point: &[u8]) -> PublicKey {
        let mut key = PublicKey {
            point: point.to_vec(),
            id: String::new(),
        };
        key.id = Digest::sha256_of(&key.spki()).to_string();
        key
    }

    /// The DER SubjectPublicKeyInfo.
    fn spki(&self) -> Vec<u8> {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.point);
        der
    }

    /// The key hint sigstore bundles carry: base64 of the SPKI's SHA-256.
    pub fn hint(&self) -> String {
        use ring::digest::{digest, SHA256};
        base64::engine::general_purpose::STANDARD.encode(digest(&SHA256, &self.spki()))
    }

    /// The PEM text of this key.
    pub fn to_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.spki());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The key that made `signature` (DER ECDSA) over `payload`, if any.
    fn recovered(payload: &[u8], signature: &[u8]) -> Vec<PublicKey> {
        use p256::ecdsa::{DerSignature, RecoveryId, Signature, VerifyingKey};
        let Ok(der) = DerSignature::try_from(signature) else {
            return Vec::new();
        };
        let Ok(sig) = Signature::try_from(der) else {
            return Vec::new();
        };
        let prehash = ring::digest::digest(&ring::digest::SHA256, payload);
        // The two y parities; an x past the curve order (ids 2, 3) has
        // probability ~2^-128 and is not tried.
        [RecoveryId::new(false, false), RecoveryId::new(true, false)]
            .into_iter()
            .filter_map(|id| VerifyingKey::recover_from_prehash(prehash.as_ref(), &sig, id).ok())
            .map(|k| PublicKey::from_point(k.to_sec1_point(false).as_bytes()))
            .collect()
    }

    /// Whether `signature` (DER ECDSA) is this key's over `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(payload, signature)
            .is_ok()
    }
}

/// A signing key (PKCS#8), for server-side signing and tests.
pub struct SigningKey {
    pair: ring::signature::EcdsaKeyPair,
    pub public: PublicKey,
}

impl SigningKey {
    pub fn generate() -> Result<(SigningKey, Vec<u8>), SignError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 =
            ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(|_| SignError::Signing)?;
        Ok((SigningKey::from_pkcs8(pkcs8.as_ref())?, pkcs8.as_ref().to_vec()))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, SignError> {
        let rng = ring::rand::SystemRandom::new();
        let pair =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
                .map_err(|e| SignError::BadKey(e.to_string()))?;
        use ring::signature::KeyPair;
        let public = PublicKey::from_point(pair.public_key().as_ref());
        Ok(SigningKey { pair, public })
    }

    /// DER ECDSA signature over `payload`.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = ring::rand::SystemRandom::new();
        Ok(self
            .pair
            .sign(&rng, payload)
            .map_err(|_| SignError::Signing)?
            .as_ref()
            .to_vec())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    optional: Option<serde_json::Value>,
}

/// The simple-signing payload cosign signs for `image` at `reference`
/// (`registry.example.com/acme/app`).
pub fn payload(reference: &str, image: &Digest) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: reference.to_string(),
            },
            image: Image {
                docker_manifest_digest: image.to_string(),
            },
            kind: "cosign container image signature".into(),
        },
        optional: None,
    })
    .expect("json")
}

/// The repository a payload says it was signed for
/// (`critical.identity.docker-reference`).
pub fn payload_reference(bytes: &[u8]) -> Option<String> {
    let p: Payload = serde_json::from_slice(bytes).ok()?;
    Some(p.critical.identity.docker_reference)
}

/// Whether a signed reference (`host/acme/app`, maybe with a tag or
/// digest) names repository `repo` (`acme/app`) of whatever registry.
pub fn reference_names_repository(reference: &str, repo: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    // A tag follows the last `:` after the last `/` (a port comes before one).
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    if name == repo {
        return true;
    }
    // One registry host before it, never a deeper repository that ends alike.
    name.strip_suffix(repo)
        .and_then(|prefix| prefix.strip_suffix('/'))
        .is_some_and(|host| !host.contains('/') && (host.contains('.') || host.contains(':') || host == "localhost"))
}

/// The image digest a payload binds its signature to.
pub fn payload_digest(bytes: &[u8]) -> Result<String, SignError> {
    let p: Payload = serde_json::from_slice(bytes).map_err(|e| SignError::BadPayload(e.to_string()))?;
    if p.critical.kind != "cosign container image signature" {
        return Err(SignError::BadPayload(format!("type {:?}", p.critical.kind)));
    }
    Ok(p.critical.image.docker_manifest_digest)
}

/// Whether a manifest is a cosign signature (every layer a
/// simple-signing payload), not an image to scan, judge or sign.
pub fn is_signature_manifest(manifest: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return false;
    };
    v["layers"]
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(|l| l["mediaType"] == SIMPLE_SIGNING))
}

/// One signature found in a signature manifest: the payload's digest and
/// declared size (the caller fetches its bytes) and the decoded signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub payload: Digest,
    pub size: u64,
    pub signature: Vec<u8>,
}

/// The signatures a cosign signature manifest lists (layers of the
/// simple-signing type with a decodable signature annotation).
pub fn candidates(manifest: &[u8]) -> Vec<Candidate> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["mediaType"] == SIMPLE_SIGNING)
        .filter_map(|l| {
            let payload = l["digest"].as_str()?.parse().ok()?;
            let sig = l["annotations"][SIGNATURE_ANNOTATION].as_str()?;
            let signature = base64::engine::general_purpose::STANDARD.decode(sig).ok()?;
            let size = l["size"].as_u64().unwrap_or(0);
            Some(Candidate {
                payload,
                size,
                signature,
            })
        })
        .take(256)
        .collect()
}

/// Keys at or below this many are each tried; above it, the signer's key is
/// recovered from the signature and looked up by id, so the work per
/// signature does not grow with the number of registered keys.
const KEYS_TRIED_DIRECTLY: usize = 3;

/// The key among `keys` whose `signature` (DER ECDSA) is over `payload`.
pub fn find_key<'a>(keys: &'a [PublicKey], payload: &[u8], signature: &[u8]) -> Option<&'a PublicKey> {
    if keys.len() <= KEYS_TRIED_DIRECTLY {
        return keys.iter().find(|k| k.verifies(payload, signature));
    }
    PublicKey::recovered(payload, signature)
        .iter()
        .find_map(|r| keys.iter().find(|k| k.id == r.id))
        .filter(|k| k.verifies(payload, signature))
}

/// The key (among `keys`) that signed `image`, given a candidate's payload
/// bytes: the payload must hash to the candidate's digest, name `image`,
/// and verify under the key.
pub fn signer<'a>(image: &Digest, c: &Candidate, payload: &[u8], keys: &'a [PublicKey]) -> Option<&'a PublicKey> {
    if Digest::of(c.payload.algorithm(), payload) != c.payload {
        return None;
    }
    if payload_digest(payload).ok()? != image.as_str() {
        return None;
    }
    find_key(keys, payload, &c.signature)
}

/// The signature manifest after one more signature: the signatures `kept`
/// from the manifest already under the image's `.sig` tag stay, so a second
/// signer adds a layer; one over the same payload is replaced by `added`
/// (payload digest, size, signature), so signing twice adds nothing.
pub fn signature_manifest_adding(
    kept: Vec<Candidate>,
    config: &Digest,
    config_size: usize,
    added: (Digest, usize, Vec<u8>),
) -> Vec<u8> {
    let mut layers: Vec<(Digest, usize, Vec<u8>)> = kept
        .into_iter()
        .filter(|c| c.payload != added.0)
        .map(|c| (c.payload, c.size as usize, c.signature))
        .collect();
    layers.push(added);
    signature_manifest(config, config_size, &layers)
}

/// A signature manifest for `payloads` (each with its signature), as cosign
/// pushes it: an OCI image manifest with an empty config.
pub fn signature_manifest(config: &Digest, config_size: usize, layers: &[(Digest, usize, Vec<u8>)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n, sig)| {
            serde_json::json!({
                "mediaType": SIMPLE_SIGNING, "digest": d.as_str(), "size": n,
                "annotations": {SIGNATURE_ANNOTATION: base64::engine::general_purpose::STANDARD.encode(sig)},
            })
        })
        .collect();
    cosign_manifest(config, config_size, layers)
}

/// The manifest cosign pushes under a `.sig` or `.att` tag: an OCI image
/// manifest with an empty config and the given layers.
pub(crate) fn cosign_manifest(config: &Digest, config_size: usize, layers: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": config_size},
        "layers": layers,
    }))
    .expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_reference_names_one_repository() {
        let table = [
            ("registry.example/acme/app", "acme/app", true),
            ("registry.example:5000/acme/app", "acme/app", true),
            ("registry.example:5000/acme/app:v1", "acme/app", true),
            ("registry.example/acme/app@sha256:ab", "acme/app", true),
            ("acme/app", "acme/app", true),
            ("registry.example/acme/other", "acme/app", false),
            ("registry.example/xacme/app", "acme/app", false),
            ("registry.example/acme/app/sub", "acme/app", false),
            ("registry.example:5000", "acme/app", false),
            ("registry.example/evil/acme/app", "acme/app", false),
            ("evil/acme/app", "acme/app", false),
            ("localhost/acme/app", "acme/app", true),
        ];
        for (reference, repo, want) in table {
            assert_eq!(reference_names_repository(reference, repo), want, "{reference} {repo}");
        }
    }

    #[test]
    fn the_signer_is_found_among_many_keys_by_recovery() {
        let signers: Vec<SigningKey> = (0..8).map(|_| SigningKey::generate().unwrap().0).collect();
        let keys: Vec<PublicKey> = signers.iter().map(|k| k.public.clone()).collect();
        let (outsider, _) = SigningKey::generate().unwrap();
        let payload = b"payload";
        // (key set size, who signs, expected signer index)
        let table: &[(usize, &SigningKey, Option<usize>)] = &[
            (8, &signers[5], Some(5)),
            (8, &signers[0], Some(0)),
            (2, &signers[1], Some(1)),
            (8, &outsider, None),
            (3, &signers[4], None),
        ];
        for (n, by, want) in table {
            let sig = by.sign(payload).unwrap();
            let got = find_key(&keys[..*n], payload, &sig).map(|k| k.id.clone());
            assert_eq!(got, want.map(|i| keys[i].id.clone()), "{n} keys");
            assert!(find_key(&keys[..*n], b"other payload", &sig).is_none());
        }
        assert!(find_key(&keys, payload, b"not DER").is_none());
    }

    #[test]
    fn sign_and_verify_round_trip_and_refusals() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let image = Digest::sha256_of(b"image manifest");
        let p = payload("registry.example/acme/app", &image);
        let c = Candidate {
            payload: Digest::sha256_of(&p),
            size: p.len() as u64,
            signature: key.sign(&p).unwrap(),
        };
        let keys = [other.public.clone(), key.public.clone()];
        assert_eq!(signer(&image, &c, &p, &keys).map(|k| &k.id), Some(&key.public.id));
        assert!(
            signer(&image, &c, &p, std::slice::from_ref(&other.public)).is_none(),
            "a key outside the set"
        );
        let elsewhere = Digest::sha256_of(b"another image");
        assert!(signer(&elsewhere, &c, &p, &keys).is_none(), "bound to its image");
        let mut tampered = p.clone();
        tampered[10] ^= 1;
        assert!(
            signer(&image, &c, &tampered, &keys).is_none(),
            "payload bytes must match"
        );
        // PEM round trip, and the manifest as cosign writes it.
        let pem = key.public.to_pem();
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), key.public);
        let m = signature_manifest(
            &Digest::sha256_of(b"{}"),
            2,
            &[(c.payload.clone(), p.len(), c.signature.clone())],
        );
        assert_eq!(candidates(&m), std::slice::from_ref(&c));
        // A second signer adds a layer; the same payload signed again replaces its own.
        let config = Digest::sha256_of(b"{}");
        let q = payload("registry.example/acme/app", &Digest::sha256_of(b"other"));
        let second = (Digest::sha256_of(&q), q.len(), other.sign(&q).unwrap());
        let two = signature_manifest_adding(candidates(&m), &config, 2, second.clone());
        let listed = candidates(&two);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], c);
        assert_eq!((&listed[1].payload, listed[1].size), (&second.0, q.len() as u64));
        let again = signature_manifest_adding(listed, &config, 2, second);
        assert_eq!(again, two, "signing the same payload twice adds nothing");
        assert_eq!(signature_tag(&image), format!("sha256-{}.sig", image.hex()));
        assert!(is_signature_tag(&signature_tag(&image)));
    }

    #[test]
    fn bad_keys_and_payloads_are_refused() {
        assert!(PublicKey::from_pem("nonsense").is_err());
        // An RSA key's SPKI is not a P-256 one.
        let rsa = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAL9h8ZxC5sZf6e+3tuoXAAeF0Rm3Xz4a\nZQfGvTzjt5b5z5Ndq0xj2BLSp5j3O3NBq1v8dPZYUe7ZtYkqTKO5eUUCAwEAAQ==\n-----END PUBLIC KEY-----\n";
        assert!(PublicKey::from_pem(rsa).is_err());
        assert!(payload_digest(b"{}").is_err());
        assert!(candidates(b"not json").is_empty());
    }
}
