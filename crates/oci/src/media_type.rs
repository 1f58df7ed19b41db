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

/// Whether bytes (a blob's first 512 or all of a smaller one) look like
/// something a runtime would unpack as a filesystem layer: a compressed
/// stream (gzip, zstd, bzip2, xz, lz4) or a tar header. Docker decides a
/// layer's compression by these bytes, not by its media type, so a
/// manifest labelling such a layer as a signature must not pass for one.
pub fn looks_like_archive(head: &[u8]) -> bool {
    let starts = |magic: &[u8]| head.starts_with(magic);
    let zstd_skippable = head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
    starts(&[0x1f, 0x8b])
        || starts(&[0x28, 0xb5, 0x2f, 0xfd])
        || zstd_skippable
        || starts(b"BZh")
        || starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || starts(&[0x04, 0x22, 0x4d, 0x18])
        || head.get(257..262) == Some(b"ustar")
        || is_v7_tar_header(head)
}

/// A pre-POSIX tar header: a 512-byte block whose checksum field (octal,
/// at 148) is the byte sum of the block with that field read as spaces.
fn is_v7_tar_header(head: &[u8]) -> bool {
    let Some(block) = head.get(..512) else {
        return false;
    };
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|b| *b as char)
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_digit(8))
        .collect();
    let Ok(want) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(*b)
            }
        })
        .sum();
    block[0] != 0 && sum == want
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_recognised_by_their_bytes() {
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"etc/motd");
        tar[148..156].copy_from_slice(b"        ");
        let sum: u32 = tar.iter().map(|b| u32::from(*b)).sum();
        tar[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let mut ustar = vec![0u8; 512];
        ustar[257..262].copy_from_slice(b"ustar");
        let table: &[(&[u8], bool)] = &[
            (&[0x1f, 0x8b, 8, 0], true),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], true),
            (&[0x5e, 0x2a, 0x4d, 0x18, 0], true),
            (b"BZh91AY", true),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0], true),
            (&[0x04, 0x22, 0x4d, 0x18], true),
            (&ustar, true),
            (&tar, true),
            (br#"{"critical":{"identity":{"docker-reference":"r/a"}}}"#, false),
            (b"SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n", false),
            (b"{}", false),
            (&[0u8; 512], false),
        ];
        for (bytes, want) in table {
            assert_eq!(looks_like_archive(bytes), *want, "{:?}", &bytes[..bytes.len().min(8)]);
        }
    }
}
