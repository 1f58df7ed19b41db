//! in-toto attestations as cosign writes them: an in-toto statement
//! (subject = the image's digest) in a DSSE envelope, stored either as a
//! layer (`application/vnd.dsse.envelope.v1+json`, annotated with its
//! `predicateType`) of the manifest under the image's `sha256-<hex>.att`
//! tag, or inside a sigstore bundle attached as a referrer (`bundle`).
//!
//! Here: cosign's predicate type names, statements, DSSE's
//! pre-authentication encoding, envelopes signed and verified, and what a
//! SLSA provenance predicate (v0.2 or v1) says about its builder and its
//! source, judged against globs. Pure: the caller fetches the bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use portcullis_oci::Digest;
use serde_json::{json, Value};

use crate::{PublicKey, SignError, SigningKey, SIGNATURE_ANNOTATION};

/// The DSSE envelope's media type: the layer type of `.att` manifests.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The `.att` layer annotation naming the statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The statement type written; both are read.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub(crate) const STATEMENTS: [&str; 2] = [STATEMENT_V1, "https://in-toto.io/Statement/v0.1"];
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// cosign's `custom` predicate type.
pub const COSIGN_CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

/// cosign's `--type` names and the predicate types they stand for (as in
/// cosign's `options.PredicateTypeMap`). Any other `--type` must be a URI,
/// which is then the predicate type itself.
pub const PREDICATE_TYPES: [(&str, &str); 10] = [
    ("custom", COSIGN_CUSTOM),
    ("slsaprovenance", SLSA_PROVENANCE_V02),
    ("slsaprovenance02", SLSA_PROVENANCE_V02),
    ("slsaprovenance1", SLSA_PROVENANCE_V1),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// Envelopes with more signatures than this are not examined.
const MAX_ENVELOPE_SIGNATURES: usize = 8;

/// The predicate type a `--type` value names: one of cosign's short names,
/// or a URI (`scheme:` followed by more, as Go's `url.ParseRequestURI`
/// wants an absolute URI).
pub fn predicate_type(name: &str) -> Result<&str, SignError> {
    if let Some((_, uri)) = PREDICATE_TYPES.iter().find(|(n, _)| *n == name) {
        return Ok(*uri);
    }
    let scheme_ok = name.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    // A statement of cosign's signing predicate is a signature, not an
    // attestation: `attest` must not mint one, and `verify-attestation`
    // would skip it.
    if name == crate::bundle::COSIGN_SIGN_PREDICATE {
        return Err(SignError::UnknownPredicateType(format!(
            "{name:?} is cosign's signature predicate: sign with `portcullis sign`"
        )));
    }
    if scheme_ok && !name.contains(char::is_whitespace) {
        return Ok(name);
    }
    let names: Vec<&str> = PREDICATE_TYPES.iter().map(|(n, _)| *n).collect();
    Err(SignError::UnknownPredicateType(format!(
        "{name:?}: not one of {} nor a URI",
        names.join(", ")
    )))
}

/// The predicate cosign puts in the statement for `--type name` and the
/// predicate file's bytes: `custom` wraps the text with a timestamp
/// (`{"Data": …, "Timestamp": …}`), `spdx` keeps it as a string, every
/// other type takes a JSON object.
pub fn predicate(name: &str, raw: &[u8], timestamp: &str) -> Result<Value, SignError> {
    let text = || {
        String::from_utf8(raw.to_vec()).map_err(|_| SignError::BadPredicate("the predicate is not UTF-8 text".into()))
    };
    match name {
        "custom" => Ok(json!({"Data": text()?, "Timestamp": timestamp})),
        "spdx" => Ok(Value::String(text()?)),
        _ => match serde_json::from_slice::<Value>(raw) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(SignError::BadPredicate("the predicate must be a JSON object".into())),
            Err(e) => Err(SignError::BadPredicate(format!("the predicate is not JSON: {e}"))),
        },
    }
}

/// An in-toto statement (v1) about `image`, named `name` (the repository,
/// `host/namespace/app`, as cosign names it).
pub fn build_statement(name: &str, image: &Digest, predicate_type: &str, predicate: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {image.algorithm().as_str(): image.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .expect("json")
}

/// DSSE's pre-authentication encoding: what the signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The DSSE envelope (as a JSON value) signing `statement` with `key`.
pub fn envelope(key: &SigningKey, statement: &[u8]) -> Result<Value, SignError> {
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement))?;
    Ok(json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": B64.encode(statement),
        "signatures": [{"keyid": "", "sig": B64.encode(signature)}],
    }))
}

/// Why an envelope did not verify as an attestation of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a DSSE envelope of an in-toto statement.
    Malformed(String),
    /// No signature in it verifies under a trusted key: an unknown signer,
    /// or an envelope changed after signing.
    Untrusted,
    /// A statement of another predicate type.
    OtherType(String),
    /// A statement about other artifacts, not the image.
    OtherSubject(Vec<String>),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Malformed(why) => write!(f, "not an in-toto attestation ({why})"),
            Rejection::Untrusted => write!(
                f,
                "its signature verifies under no trusted key (an untrusted signer, or an envelope changed after signing)"
            ),
            Rejection::OtherType(t) => write!(f, "of predicate type {t}"),
            Rejection::OtherSubject(digests) => write!(f, "its subject is another image ({})", digests.join(", ")),
        }
    }
}

/// A statement read from a verified envelope.
#[derive(Debug, Clone)]
pub struct Statement {
    pub predicate_type: String,
    pub value: Value,
}

impl Statement {
    /// Reads a statement (v1 or v0.1).
    pub fn parse(bytes: &[u8]) -> Result<Statement, SignError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| SignError::BadStatement(e.to_string()))?;
        let kind = value["_type"].as_str().unwrap_or_default();
        if !STATEMENTS.contains(&kind) {
            return Err(SignError::BadStatement(format!(
                "_type {kind:?} is not an in-toto statement"
            )));
        }
        if !value["subject"].is_array() {
            return Err(SignError::BadStatement("no subject list".into()));
        }
        let predicate_type = value["predicateType"]
            .as_str()
            .ok_or_else(|| SignError::BadStatement("no predicateType".into()))?
            .to_string();
        Ok(Statement { predicate_type, value })
    }

    /// Whether a subject of the statement is `image` (by its digest).
    pub fn names(&self, image: &Digest) -> bool {
        self.subjects()
            .any(|s| s["digest"][image.algorithm().as_str()] == image.hex())
    }

    fn subjects(&self) -> impl Iterator<Item = &Value> {
        self.value["subject"].as_array().into_iter().flatten()
    }

    /// The subjects' digests (`sha256:<hex>`), for a refusal to name.
    pub fn subject_digests(&self) -> Vec<String> {
        self.subjects()
            .filter_map(|s| s["digest"].as_object())
            .flat_map(|d| {
                d.iter()
                    .filter_map(|(alg, hex)| Some(format!("{alg}:{}", hex.as_str()?)))
            })
            .collect()
    }

    pub fn predicate(&self) -> &Value {
        &self.value["predicate"]
    }
}

/// The statement inside a DSSE `envelope` and the key (among `keys`) whose
/// signature over it verifies. `one_signature`: the envelope must hold
/// exactly one signature (as a sigstore bundle's must); otherwise any of
/// its first few signatures may be the trusted one.
pub fn open_envelope<'a>(
    envelope: &Value,
    keys: &'a [PublicKey],
    one_signature: bool,
) -> Result<(&'a PublicKey, Statement), Rejection> {
    let malformed = |why: &str| Rejection::Malformed(why.to_string());
    let payload_type = envelope["payloadType"]
        .as_str()
        .ok_or_else(|| malformed("no payloadType"))?;
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Rejection::Malformed(format!("payload type {payload_type}")));
    }
    let payload = envelope["payload"]
        .as_str()
        .and_then(|p| B64.decode(p).ok())
        .ok_or_else(|| malformed("the payload is not base64"))?;
    let signatures = envelope["signatures"]
        .as_array()
        .ok_or_else(|| malformed("no signature list"))?;
    if one_signature && signatures.len() != 1 {
        return Err(Rejection::Malformed(format!(
            "{} signatures in a bundle's envelope, not one",
            signatures.len()
        )));
    }
    let signed = pae(payload_type, &payload);
    let key = signatures
        .iter()
        .take(MAX_ENVELOPE_SIGNATURES)
        .filter_map(|s| B64.decode(s["sig"].as_str()?).ok())
        .find_map(|sig| crate::find_key(keys, &signed, &sig))
        .ok_or(Rejection::Untrusted)?;
    let statement = Statement::parse(&payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    Ok((key, statement))
}

/// The predicate type an envelope's statement claims, read without
/// verifying anything: only to tell a refusal which attestations it saw.
pub fn claimed_predicate_type(envelope: &Value) -> Option<String> {
    let payload = B64.decode(envelope["payload"].as_str()?).ok()?;
    Some(Statement::parse(&payload).ok()?.predicate_type)
}

/// The fields of a DSSE envelope verification reads; serde skips the rest
/// without keeping it, so padding in a stranger's document costs no memory.
#[derive(serde::Deserialize)]
struct EnvelopeFields {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<SignatureFields>,
}

#[derive(serde::Deserialize)]
struct SignatureFields {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

impl EnvelopeFields {
    fn into_value(self) -> Value {
        let signatures: Vec<Value> = self
            .signatures
            .into_iter()
            .take(MAX_ENVELOPE_SIGNATURES + 1)
            .map(|s| json!({"keyid": s.keyid, "sig": s.sig}))
            .collect();
        json!({"payloadType": self.payload_type, "payload": self.payload, "signatures": signatures})
    }
}

/// A DSSE envelope document (an `.att` layer), cut to what verification
/// reads; `None` when it is not one.
pub fn read_envelope(bytes: &[u8]) -> Option<Value> {
    Some(serde_json::from_slice::<EnvelopeFields>(bytes).ok()?.into_value())
}

/// The DSSE envelope of a sigstore bundle document, cut to what
/// verification reads; `None` when it is not a bundle holding one.
pub fn read_bundle_envelope(bytes: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct BundleFields {
        #[serde(rename = "mediaType")]
        media_type: String,
        #[serde(rename = "dsseEnvelope")]
        envelope: EnvelopeFields,
    }
    let b: BundleFields = serde_json::from_slice(bytes).ok()?;
    b.media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
        .then(|| b.envelope.into_value())
}

/// An attestation of `image` of `predicate_type` in `envelope`, signed by
/// one of `keys`: the signer and the statement.
pub fn verify_attestation<'a>(
    image: &Digest,
    envelope: &Value,
    keys: &'a [PublicKey],
    predicate_type: &str,
    one_signature: bool,
) -> Result<(&'a PublicKey, Statement), Rejection> {
    let (key, statement) = open_envelope(envelope, keys, one_signature)?;
    if statement.predicate_type != predicate_type {
        return Err(Rejection::OtherType(statement.predicate_type));
    }
    if !statement.names(image) {
        return Err(Rejection::OtherSubject(statement.subject_digests()));
    }
    Ok((key, statement))
}

/// What a SLSA provenance predicate says about its build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// v1 `runDetails.builder.id`; v0.2 `builder.id`.
    pub builder_id: Option<String>,
    /// The build's own source, the one a source rule judges. v1: the
    /// first of `buildDefinition.externalParameters`' `workflow.repository`,
    /// `source.uri`, `source`, `repository` and `configSource.uri`, else
    /// the first `resolvedDependencies[].uri` (as slsa-verifier reads it);
    /// v0.2: `invocation.configSource.uri`.
    pub source_uri: Option<String>,
    /// v1's `resolvedDependencies[].uri`: everything the build consumed
    /// (base images, shared tasks, submodules). Shown, never matched: a
    /// build of another repository can list this one among them.
    pub dependencies: Vec<String>,
}

/// The builder and source of a SLSA provenance statement (v0.2 or v1);
/// `None` for any other predicate type.
pub fn provenance(predicate_type: &str, predicate: &Value) -> Option<Provenance> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    match predicate_type {
        SLSA_PROVENANCE_V1 => {
            let external = &predicate["buildDefinition"]["externalParameters"];
            let dependencies: Vec<String> = predicate["buildDefinition"]["resolvedDependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| text(&d["uri"]))
                .collect();
            let declared = [
                &external["workflow"]["repository"],
                &external["source"]["uri"],
                &external["source"],
                &external["repository"],
                &external["configSource"]["uri"],
            ]
            .into_iter()
            .find_map(text);
            Some(Provenance {
                builder_id: text(&predicate["runDetails"]["builder"]["id"]),
                source_uri: declared.or_else(|| dependencies.first().cloned()),
                dependencies,
            })
        }
        SLSA_PROVENANCE_V02 => Some(Provenance {
            builder_id: text(&predicate["builder"]["id"]),
            source_uri: text(&predicate["invocation"]["configSource"]["uri"]),
            dependencies: Vec::new(),
        }),
        _ => None,
    }
}

/// Globs a provenance must match: its builder id one of `builder_ids`, and
/// its source one of `source_uris` (an empty list asks nothing). `*` stays
/// within a path segment (`acme/*` is not `acme/x/y`); `**` crosses them.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceRule {
    builder_ids: Vec<(String, globset::GlobMatcher)>,
    source_uris: Vec<(String, globset::GlobMatcher)>,
}

impl ProvenanceRule {
    pub fn new(builder_ids: &[String], source_uris: &[String]) -> Result<ProvenanceRule, SignError> {
        let compile = |globs: &[String]| {
            globs
                .iter()
                .map(|g| {
                    let m = globset::GlobBuilder::new(g)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| SignError::BadGlob(format!("{g:?}: {}", e.kind())))?
                        .compile_matcher();
                    Ok((g.clone(), m))
                })
                .collect::<Result<Vec<_>, SignError>>()
        };
        Ok(ProvenanceRule {
            builder_ids: compile(builder_ids)?,
            source_uris: compile(source_uris)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.builder_ids.is_empty() && self.source_uris.is_empty()
    }

    /// `Ok` when `statement` satisfies the rule; else what it lacks.
    pub fn check(&self, statement: &Statement) -> Result<(), String> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(p) = provenance(&statement.predicate_type, statement.predicate()) else {
            return Err(format!(
                "a builder or source is asked for, but {} is not SLSA provenance",
                statement.predicate_type
            ));
        };
        let globs = |list: &[(String, globset::GlobMatcher)]| {
            list.iter().map(|(g, _)| g.as_str()).collect::<Vec<_>>().join(", ")
        };
        if !self.builder_ids.is_empty() {
            match &p.builder_id {
                None => return Err("the provenance names no builder id".into()),
                Some(id) if !self.builder_ids.iter().any(|(_, m)| m.is_match(id)) => {
                    return Err(format!(
                        "builder id {id} matches none of [{}]",
                        globs(&self.builder_ids)
                    ))
                }
                Some(_) => {}
            }
        }
        if !self.source_uris.is_empty() {
            match &p.source_uri {
                None => return Err("the provenance names no source URI".into()),
                Some(source) if !self.source_uris.iter().any(|(_, m)| m.is_match(source)) => {
                    return Err(format!(
                        "source {source} matches none of [{}]",
                        globs(&self.source_uris)
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The manifest under an image's `.att` tag after one more attestation:
/// every layer of `existing` (the manifest already there, if any) stays, as
/// cosign keeps them, but one with the added envelope's digest is replaced;
/// the added layer is a DSSE envelope annotated with its predicate type.
/// An existing manifest that can't be read as one with layers is an error,
/// never silently replaced (its attestations would be lost).
pub fn attestation_manifest_adding(
    existing: Option<&[u8]>,
    config: &Digest,
    config_size: usize,
    added: (&Digest, usize, &str),
) -> Result<Vec<u8>, SignError> {
    let (digest, size, predicate_type) = added;
    let kept = match existing {
        None => Vec::new(),
        Some(m) => serde_json::from_slice::<Value>(m)
            .map_err(|e| SignError::UnreadableAttestations(e.to_string()))?
            .get_mut("layers")
            .and_then(|l| l.as_array_mut().map(std::mem::take))
            .ok_or_else(|| SignError::UnreadableAttestations("no layers".into()))?,
    };
    let mut layers: Vec<Value> = kept.into_iter().filter(|l| l["digest"] != digest.as_str()).collect();
    layers.push(json!({
        "mediaType": DSSE_ENVELOPE, "digest": digest.as_str(), "size": size,
        "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type},
    }));
    Ok(crate::cosign_manifest(config, config_size, layers))
}

/// The DSSE envelope layers of an `.att` manifest: digest, size and the
/// predicate type its annotation claims (unverified: a hint for skipping).
pub fn attestation_layers(manifest: &[u8]) -> Vec<(Digest, u64, Option<String>)> {
    let Ok(v) = serde_json::from_slice::<Value>(manifest) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["mediaType"] == DSSE_ENVELOPE)
        .filter_map(|l| {
            let digest = l["digest"].as_str()?.parse().ok()?;
            let claimed = l["annotations"][PREDICATE_TYPE_ANNOTATION].as_str().map(str::to_string);
            Some((digest, l["size"].as_u64()?, claimed))
        })
        .take(256)
        .collect()
}

/// The tag cosign stores an image's attestations under.
pub fn attestation_tag(image: &Digest) -> String {
    format!("{}-{}.att", image.algorithm().as_str(), image.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_cosigns() {
        // (--type, predicate type); None: refused.
        let table: &[(&str, Option<&str>)] = &[
            ("slsaprovenance", Some("https://slsa.dev/provenance/v0.2")),
            ("slsaprovenance02", Some("https://slsa.dev/provenance/v0.2")),
            ("slsaprovenance1", Some("https://slsa.dev/provenance/v1")),
            ("spdx", Some("https://spdx.dev/Document")),
            ("spdxjson", Some("https://spdx.dev/Document")),
            ("cyclonedx", Some("https://cyclonedx.org/bom")),
            ("link", Some("https://in-toto.io/Link/v1")),
            ("vuln", Some("https://cosign.sigstore.dev/attestation/vuln/v1")),
            ("openvex", Some("https://openvex.dev/ns")),
            ("custom", Some("https://cosign.sigstore.dev/attestation/v1")),
            ("https://example.com/review/v1", Some("https://example.com/review/v1")),
            ("urn:acme:attestation", Some("urn:acme:attestation")),
            ("slsa", None),
            ("", None),
            ("https:", None),
            ("1http://x", None),
            ("https://a b", None),
            // cosign's signing predicate makes a signature, not an attestation.
            ("https://sigstore.dev/cosign/sign/v1", None),
        ];
        for (name, want) in table {
            assert_eq!(predicate_type(name).ok(), *want, "{name:?}");
        }
    }

    #[test]
    fn predicates_are_shaped_as_cosign_shapes_them() {
        let custom = predicate("custom", b"free text", "2026-12-07T00:00:00Z").unwrap();
        assert_eq!(
            custom,
            json!({"Data": "free text", "Timestamp": "2026-12-07T00:00:00Z"})
        );
        assert_eq!(
            predicate("spdx", b"SPDXVersion: SPDX-2.3", "").unwrap(),
            json!("SPDXVersion: SPDX-2.3")
        );
        assert_eq!(
            predicate("slsaprovenance1", br#"{"a":1}"#, "").unwrap(),
            json!({"a": 1})
        );
        assert!(predicate("slsaprovenance1", b"[1]", "").is_err());
        assert!(predicate("cyclonedx", b"not json", "").is_err());
        assert!(predicate("custom", &[0xff, 0xfe], "").is_err());
    }

    #[test]
    fn pae_is_dsse_v1() {
        // The DSSE specification's own example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    fn signed(key: &SigningKey, image: &Digest, predicate_type: &str, predicate: Value) -> Value {
        envelope(
            key,
            &build_statement("registry.example/acme/app", image, predicate_type, predicate),
        )
        .unwrap()
    }

    #[test]
    fn envelopes_verify_only_for_their_key_type_and_image() {
        let (key, _) = SigningKey::generate().unwrap();
        let (other, _) = SigningKey::generate().unwrap();
        let image = Digest::sha256_of(b"image");
        let elsewhere = Digest::sha256_of(b"another image");
        let keys = [key.public.clone()];
        let good = signed(&key, &image, SLSA_PROVENANCE_V1, json!({}));
        let mut tampered = good.clone();
        let body = build_statement("registry.example/acme/app", &elsewhere, SLSA_PROVENANCE_V1, json!({}));
        tampered["payload"] = B64.encode(body).into();
        let mut two = good.clone();
        two["signatures"] = json!([{"sig": B64.encode(b"junk")}, good["signatures"][0].clone()]);
        let mut wrong_payload_type = good.clone();
        wrong_payload_type["payloadType"] = "text/plain".into();
        // (envelope, keys, expected outcome)
        let table: Vec<(&str, Value, &[PublicKey], Result<(), Rejection>)> = vec![
            ("good", good.clone(), &keys[..], Ok(())),
            (
                "another signer",
                signed(&other, &image, SLSA_PROVENANCE_V1, json!({})),
                &keys,
                Err(Rejection::Untrusted),
            ),
            ("tampered", tampered, &keys, Err(Rejection::Untrusted)),
            ("no keys", good.clone(), &[][..], Err(Rejection::Untrusted)),
            (
                "other type",
                signed(&key, &image, SLSA_PROVENANCE_V02, json!({})),
                &keys,
                Err(Rejection::OtherType(SLSA_PROVENANCE_V02.into())),
            ),
            (
                "other image",
                signed(&key, &elsewhere, SLSA_PROVENANCE_V1, json!({})),
                &keys,
                Err(Rejection::OtherSubject(vec![elsewhere.to_string()])),
            ),
            ("a second signature", two, &keys, Ok(())),
            (
                "payload type",
                wrong_payload_type,
                &keys,
                Err(Rejection::Malformed("payload type text/plain".into())),
            ),
        ];
        for (what, env, keys, want) in table {
            let got = verify_attestation(&image, &env, keys, SLSA_PROVENANCE_V1, false).map(|_| ());
            assert_eq!(got, want, "{what}");
        }
        // A bundle's envelope holds exactly one signature.
        let mut two = good.clone();
        two["signatures"] = json!([good["signatures"][0].clone(), good["signatures"][0].clone()]);
        assert!(matches!(
            verify_attestation(&image, &two, &keys, SLSA_PROVENANCE_V1, true),
            Err(Rejection::Malformed(_))
        ));
        assert_eq!(claimed_predicate_type(&good).as_deref(), Some(SLSA_PROVENANCE_V1));
    }

    #[test]
    fn provenance_rules_judge_builder_and_source() {
        let v1 = |builder: &str, external: Value, deps: Value| Statement {
            predicate_type: SLSA_PROVENANCE_V1.into(),
            value: json!({"predicate": {
                "buildDefinition": {"buildType": "x", "externalParameters": external, "resolvedDependencies": deps},
                "runDetails": {"builder": {"id": builder}},
            }}),
        };
        let v02 = |builder: &str, source: &str| Statement {
            predicate_type: SLSA_PROVENANCE_V02.into(),
            value: json!({"predicate": {"builder": {"id": builder}, "invocation": {"configSource": {"uri": source}}}}),
        };
        let ci = "https://ci.acme.example/builders/*";
        let rule =
            ProvenanceRule::new(&[ci.into()], &["git+https://git.acme.example/app@refs/heads/*".into()]).unwrap();
        let repo = "git+https://git.acme.example/app@refs/heads/main";
        let table: Vec<(&str, Statement, Result<(), &str>)> = vec![
            (
                "v1 source",
                v1("https://ci.acme.example/builders/1", json!({"source": repo}), json!([])),
                Ok(()),
            ),
            (
                "v1 workflow repository",
                v1(
                    "https://ci.acme.example/builders/1",
                    json!({"workflow": {"repository": repo}}),
                    json!([]),
                ),
                Ok(()),
            ),
            (
                "v1 first resolved dependency",
                v1(
                    "https://ci.acme.example/builders/1",
                    json!({}),
                    json!([{"uri": repo}, {"uri": "pkg:docker/debian"}]),
                ),
                Ok(()),
            ),
            // A build of another repository may consume this one (a
            // submodule, a shared task): only the build's own source counts.
            (
                "v1 later resolved dependency",
                v1(
                    "https://ci.acme.example/builders/1",
                    json!({}),
                    json!([{"uri": "git+https://git.acme.example/tool"}, {"uri": repo}]),
                ),
                Err("source git+https://git.acme.example/tool matches none of"),
            ),
            (
                "v1 declared source with this repository as a dependency",
                v1(
                    "https://ci.acme.example/builders/1",
                    json!({"workflow": {"repository": "git+https://git.acme.example/tool"}}),
                    json!([{"uri": repo}]),
                ),
                Err("source git+https://git.acme.example/tool matches none of"),
            ),
            (
                "* stays within a path segment",
                v1(
                    "https://ci.acme.example/builders/1/evil",
                    json!({"source": repo}),
                    json!([]),
                ),
                Err("builder id https://ci.acme.example/builders/1/evil matches none of"),
            ),
            ("v0.2", v02("https://ci.acme.example/builders/2", repo), Ok(())),
            (
                "wrong builder",
                v1("https://evil.example/builder", json!({"source": repo}), json!([])),
                Err("builder id https://evil.example/builder matches none of"),
            ),
            (
                "wrong source",
                v02("https://ci.acme.example/builders/2", "git+https://evil.example/app"),
                Err("source git+https://evil.example/app matches none of"),
            ),
            (
                "no source",
                v1("https://ci.acme.example/builders/1", json!({}), json!([])),
                Err("names no source URI"),
            ),
            (
                "no builder",
                Statement {
                    predicate_type: SLSA_PROVENANCE_V1.into(),
                    value: json!({"predicate": {}}),
                },
                Err("names no builder id"),
            ),
            (
                "not provenance",
                Statement {
                    predicate_type: COSIGN_CUSTOM.into(),
                    value: json!({"predicate": {}}),
                },
                Err("is not SLSA provenance"),
            ),
        ];
        for (what, statement, want) in table {
            match (rule.check(&statement), want) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{what}: {got}"),
                (got, want) => panic!("{what}: {got:?}, wanted {want:?}"),
            }
        }
        assert!(ProvenanceRule::new(&[], &[]).unwrap().check(&v02("x", "y")).is_ok());
        assert!(ProvenanceRule::new(&["a[".into()], &[]).is_err());
    }

    #[test]
    fn att_manifests_keep_every_layer_they_had() {
        let config = Digest::sha256_of(b"{}");
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let one = attestation_manifest_adding(None, &config, 2, (&a, 10, SLSA_PROVENANCE_V1)).unwrap();
        let two = attestation_manifest_adding(Some(&one), &config, 2, (&b, 20, COSIGN_CUSTOM)).unwrap();
        let again = attestation_manifest_adding(Some(&two), &config, 2, (&b, 20, COSIGN_CUSTOM)).unwrap();
        assert_eq!(two, again, "the same envelope twice adds nothing");
        // What can't be read is not replaced: its attestations would be lost.
        for unreadable in [&b"not json"[..], br#"{"manifests": []}"#, br#"{"layers": {}}"#] {
            assert!(matches!(
                attestation_manifest_adding(Some(unreadable), &config, 2, (&b, 20, COSIGN_CUSTOM)),
                Err(SignError::UnreadableAttestations(_))
            ));
        }
        let layers = attestation_layers(&two);
        assert_eq!(
            layers,
            [
                (a, 10, Some(SLSA_PROVENANCE_V1.to_string())),
                (b, 20, Some(COSIGN_CUSTOM.to_string()))
            ]
        );
        let image = Digest::sha256_of(b"image");
        assert_eq!(attestation_tag(&image), format!("sha256-{}.att", image.hex()));
    }
}
