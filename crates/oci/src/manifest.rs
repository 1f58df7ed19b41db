use serde::Deserialize;
use serde_json::Value;

use crate::media_type::{self, essence, is_index, MANIFEST_TYPES};
use crate::{Digest, OciError};

/// Largest manifest body accepted, as Distribution and the spec's guidance do.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a manifest is to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An index or manifest list: it passes only if every image it reaches does.
    Index,
    /// A signature, attestation or SBOM: every layer is of a type in
    /// [`media_type::ARTIFACT_LAYER_TYPES`], so it cannot run.
    Artifact,
    /// Anything else, whatever its config's media type says: a runtime
    /// reads the config without checking its type, so this is judged.
    Image,
}

/// A reference from a manifest to a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// The facts of a manifest the registry acts on: what it references and
/// what it is about. The original bytes stay the source of truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub media_type: String,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> OciError {
    OciError::InvalidManifest(msg.into())
}

fn descriptor(raw: RawDescriptor, field: &str) -> Result<Descriptor, OciError> {
    let media_type = raw
        .media_type
        .ok_or_else(|| invalid(format!("{field}: mediaType is required")))?;
    let digest = raw
        .digest
        .ok_or_else(|| invalid(format!("{field}: digest is required")))?
        .parse::<Digest>()
        .map_err(|e| invalid(format!("{field}: {e}")))?;
    let size = raw.size.ok_or_else(|| invalid(format!("{field}: size is required")))?;
    let size = u64::try_from(size).map_err(|_| invalid(format!("{field}: size must not be negative")))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
    })
}

fn descriptors(raw: Vec<RawDescriptor>, field: &str) -> Result<Vec<Descriptor>, OciError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, &format!("{field}[{i}]")))
        .collect()
}

impl Manifest {
    /// Parses and validates a manifest body.
    ///
    /// `content_type` is the request's `Content-Type`: umoci and others omit
    /// the body's `mediaType`, so the header decides then. When both are
    /// present they must agree, or a client could make a manifest read back
    /// as a different kind than it was checked as.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, OciError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(OciError::ManifestTooLarge(bytes.len()));
        }
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| OciError::MalformedJson(e.to_string()))?;
        let header = content_type.map(essence).filter(|ct| {
            MANIFEST_TYPES.contains(ct) || *ct == media_type::DOCKER_SCHEMA1 || *ct == media_type::DOCKER_SCHEMA1_SIGNED
        });
        let schema_one = |t: &str| t == media_type::DOCKER_SCHEMA1 || t == media_type::DOCKER_SCHEMA1_SIGNED;
        if raw.schema_version == Some(1)
            || header.is_some_and(schema_one)
            || raw.media_type.as_deref().is_some_and(schema_one)
        {
            return Err(OciError::SchemaOne);
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        if let (Some(body), Some(header)) = (raw.media_type.as_deref(), header) {
            if body != header {
                return Err(invalid(format!(
                    "mediaType {body:?} in the manifest does not match Content-Type {header:?}"
                )));
            }
        }
        let media_type = match (raw.media_type.as_deref(), header) {
            (Some(t), _) | (None, Some(t)) => t.to_string(),
            (None, None) if raw.manifests.is_some() => media_type::OCI_INDEX.to_string(),
            (None, None) => media_type::OCI_MANIFEST.to_string(),
        };
        if !MANIFEST_TYPES.contains(&media_type.as_str()) {
            return Err(OciError::UnsupportedMediaType(media_type));
        }
        let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;
        let (config, layers, manifests) = if is_index(&media_type) {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(invalid("an index must not have config or layers"));
            }
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid("an index needs a manifests array"))?;
            (None, Vec::new(), descriptors(manifests, "manifests")?)
        } else {
            let config = raw
                .config
                .ok_or_else(|| invalid("an image manifest needs a config descriptor"))?;
            let layers = raw
                .layers
                .ok_or_else(|| invalid("an image manifest needs a layers array"))?;
            (
                Some(descriptor(config, "config")?),
                descriptors(layers, "layers")?,
                Vec::new(),
            )
        };
        Ok(Manifest {
            media_type,
            config,
            layers,
            manifests,
            subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations,
        })
    }

    /// Blobs the registry must hold for this manifest to be complete:
    /// the config and every layer that is not marked as hosted elsewhere.
    pub fn required_blobs(&self) -> Vec<&Digest> {
        let mut out: Vec<&Digest> = self
            .config
            .iter()
            .chain(
                self.layers
                    .iter()
                    .filter(|l| !media_type::is_non_distributable(&l.media_type)),
            )
            .map(|d| &d.digest)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Child manifests an index lists.
    pub fn required_manifests(&self) -> Vec<&Digest> {
        let mut out: Vec<&Digest> = self.manifests.iter().map(|d| &d.digest).collect();
        out.sort();
        out.dedup();
        out
    }

    /// A signature, attestation or SBOM document; or the empty descriptor
    /// of an artifact whose declared type is one of those.
    fn is_evidence_layer(&self, layer: &Descriptor) -> bool {
        media_type::is_artifact_layer(&layer.media_type)
            || (media_type::essence(&layer.media_type) == media_type::EMPTY
                && self.referrer_artifact_type().is_some_and(media_type::is_artifact_layer))
    }

    /// What the gate judges this manifest as.
    pub fn kind(&self) -> ManifestKind {
        if is_index(&self.media_type) {
            ManifestKind::Index
        } else if !self.layers.is_empty() && self.layers.iter().all(|l| self.is_evidence_layer(l)) {
            ManifestKind::Artifact
        } else {
            ManifestKind::Image
        }
    }

    /// The type the referrers API reports: `artifactType`, else the config's media type.
    pub fn referrer_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::*;

    fn d(s: &str) -> String {
        Digest::sha256_of(s.as_bytes()).to_string()
    }

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type.map(|m| format!(r#""mediaType":"{m}","#)).unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":10}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":10}}]}}"#,
            d("c"),
            d("l"),
            d("l")
        )
    }

    #[test]
    fn kind_judges_everything_that_could_run() {
        let manifest = |config: &str, layers: &[&str]| {
            let layers: Vec<String> = layers
                .iter()
                .map(|t| format!(r#"{{"mediaType":"{t}","digest":"{}","size":1}}"#, d(t)))
                .collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{config}","digest":"{}","size":2}},"layers":[{}]}}"#,
                d("c"),
                layers.join(",")
            )
        };
        let tar = "application/vnd.oci.image.layer.v1.tar+gzip";
        let sig = "application/vnd.dev.cosign.simplesigning.v1+json";
        let cases: &[(String, ManifestKind)] = &[
            (
                manifest("application/vnd.oci.image.config.v1+json", &[tar]),
                ManifestKind::Image,
            ),
            // Whatever the config's type claims, tar layers can run.
            (
                manifest("application/vnd.oci.image.config.v2+json", &[tar]),
                ManifestKind::Image,
            ),
            (
                manifest("application/vnd.example.anything", &[tar]),
                ManifestKind::Image,
            ),
            (manifest("application/vnd.oci.empty.v1+json", &[]), ManifestKind::Image),
            (
                manifest("application/vnd.oci.image.config.v1+json", &[sig]),
                ManifestKind::Artifact,
            ),
            (
                manifest("application/vnd.oci.image.config.v1+json", &[sig, sig]),
                ManifestKind::Artifact,
            ),
            (
                manifest("application/vnd.oci.image.config.v1+json", &[sig, tar]),
                ManifestKind::Image,
            ),
            (
                manifest(
                    "application/vnd.oci.empty.v1+json",
                    &["application/vnd.dev.sigstore.bundle.v0.3+json"],
                ),
                ManifestKind::Artifact,
            ),
            (
                manifest(
                    "application/vnd.oci.image.config.v1+json",
                    &["application/vnd.dsse.envelope.v1+json"],
                ),
                ManifestKind::Artifact,
            ),
            (
                manifest("application/spdx+json", &["text/spdx+json"]),
                ManifestKind::Artifact,
            ),
            (
                manifest(
                    "application/vnd.oci.image.config.v1+json",
                    &["application/vnd.example.readme"],
                ),
                ManifestKind::Image,
            ),
            (
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#),
                ManifestKind::Index,
            ),
        ];
        for (body, want) in cases {
            let m = Manifest::parse(body.as_bytes(), None).unwrap();
            assert_eq!(m.kind(), *want, "{body}");
        }
    }

    #[test]
    fn media_type_comes_from_body_or_header() {
        // (body mediaType, Content-Type, expected media type or error fragment)
        let cases: &[(Option<&str>, Option<&str>, Result<&str, &str>)] = &[
            (Some(OCI_MANIFEST), Some(OCI_MANIFEST), Ok(OCI_MANIFEST)),
            (None, Some(OCI_MANIFEST), Ok(OCI_MANIFEST)),
            (None, Some(DOCKER_MANIFEST), Ok(DOCKER_MANIFEST)),
            (Some(DOCKER_MANIFEST), Some("application/json"), Ok(DOCKER_MANIFEST)),
            (None, None, Ok(OCI_MANIFEST)),
            (Some(OCI_MANIFEST), Some(DOCKER_MANIFEST), Err("does not match")),
            (None, Some(DOCKER_SCHEMA1_SIGNED), Err("schema 1")),
            (Some("application/vnd.example+json"), None, Err("unsupported")),
        ];
        for (body, header, want) in cases {
            let got = Manifest::parse(image(*body).as_bytes(), *header);
            match (want, got) {
                (Ok(mt), Ok(m)) => assert_eq!(m.media_type, *mt),
                (Err(frag), Err(e)) => assert!(e.to_string().contains(frag), "{body:?} {header:?}: {e}"),
                (want, got) => panic!("{body:?} {header:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rejects_malformed_manifests_with_reasons() {
        let dg = d("x");
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("[]", "not valid JSON"),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, "schema 1"),
            (r#"{"schemaVersion":3,"config":{}}"#, "schemaVersion must be 2"),
            (r#"{"schemaVersion":2,"layers":[]}"#, "needs a config"),
            (
                &format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"a","digest":"{dg}","size":1}}}}"#),
                "layers array",
            ),
            (
                &format!(r#"{{"schemaVersion":2,"config":{{"mediaType":"a","digest":"{dg}","size":-1}},"layers":[]}}"#),
                "negative",
            ),
            (
                r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:zz","size":1},"layers":[]}"#,
                "config",
            ),
            (
                &format!(r#"{{"schemaVersion":2,"config":{{"digest":"{dg}","size":1}},"layers":[]}}"#),
                "mediaType is required",
            ),
            (
                &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
                "manifests array",
            ),
        ];
        for (body, frag) in cases {
            let err = Manifest::parse(body.as_bytes(), None).unwrap_err();
            assert!(err.to_string().contains(frag), "{body}: {err}");
        }
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            Manifest::parse(&huge, None),
            Err(OciError::ManifestTooLarge(MAX_MANIFEST_BYTES + 1))
        );
    }

    #[test]
    fn lists_required_content() {
        let m = Manifest::parse(image(Some(OCI_MANIFEST)).as_bytes(), None).unwrap();
        let blobs: Vec<String> = m.required_blobs().iter().map(|d| d.to_string()).collect();
        let mut want = vec![d("c"), d("l")];
        want.sort();
        assert_eq!(blobs, want, "config and layers, duplicates once");
        assert_eq!(
            m.referrer_artifact_type(),
            Some("application/vnd.oci.image.config.v1+json")
        );

        let foreign = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"a","digest":"{}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":5,"urls":["https://example.com"]}}]}}"#,
            d("c"),
            d("f")
        );
        let m = Manifest::parse(foreign.as_bytes(), None).unwrap();
        assert_eq!(m.required_blobs().len(), 1, "foreign layers live elsewhere");

        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","artifactType":"application/x-sig","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7}}}}"#,
            d("m"),
            d("s")
        );
        let m = Manifest::parse(index.as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(m.required_manifests().len(), 1);
        assert!(m.required_blobs().is_empty());
        assert_eq!(m.subject.as_ref().unwrap().digest.to_string(), d("s"));
        assert_eq!(m.referrer_artifact_type(), Some("application/x-sig"));
    }
}
