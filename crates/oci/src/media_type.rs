//! Media types the registry understands as manifests.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The media types a manifest PUT may carry.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// Whether the type lists other manifests rather than layers.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Layer types of signature, attestation and SBOM artifacts (compared
/// without parameters or case): no runtime unpacks them into a root
/// filesystem (containerd refuses a layer type it does not know), so a
/// manifest made only of them cannot run, and the gate need not judge it
/// as an image. Anything else is judged. Every sigstore bundle version
/// (`application/vnd.dev.sigstore.bundle…`) counts too.
pub const ARTIFACT_LAYER_TYPES: [&str; 17] = [
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.cosign.artifact.sbom.v1+json",
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
    "application/vnd.cncf.notary.signature",
    "application/jose+json",
    "application/cose",
    // cosign's `attach sbom` types, as cosign writes them.
    "spdx+json",
    "text/spdx",
    "text/spdx+json",
    "text/spdx+xml",
    "application/spdx+json",
    "application/vnd.cyclonedx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.syft+json",
];

/// The OCI empty descriptor (`{}`), which artifacts without content use as
/// their one layer.
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Whether a layer of this type is a signature, attestation or SBOM
/// document, never a filesystem.
pub fn is_artifact_layer(media_type: &str) -> bool {
    let m = essence(media_type).to_ascii_lowercase();
    m.starts_with("application/vnd.dev.sigstore.bundle") || ARTIFACT_LAYER_TYPES.contains(&m.as_str())
}

/// Layers that by definition live elsewhere (Windows base layers): a
/// manifest may name them without the registry holding their bytes.
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains(".nondistributable.")
}

/// Strips parameters (`; charset=utf-8`) and surrounding space.
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}
