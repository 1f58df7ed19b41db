//! What a manifest stands for at the gate. An image is itself; an index is
//! every image it reaches, through nested indexes; a signature, attestation
//! or SBOM artifact is nothing to judge. Pulls, admission, promotion and
//! scanning all ask here, so no path classifies manifests its own way.

use std::collections::HashSet;

use portcullis_oci::{Digest, Manifest, ManifestKind, Reference};

use crate::{Registry, RegistryError};

/// Index nesting followed (index → index → … → image); deeper is refused,
/// never skipped.
pub(crate) const MAX_DEPTH: usize = 8;
/// Images one manifest may reach; more is refused, never cut short (real
/// multi-platform indexes list a few dozen).
pub(crate) const MAX_IMAGES: usize = 256;
/// Child descriptors examined in all, duplicates included: one manifest
/// read per distinct child at most, and no index of 30,000 entries walked.
pub(crate) const MAX_DESCRIPTORS: usize = 1024;

/// How a stored manifest is judged; one that does not parse is judged as an
/// image (fail closed).
pub(crate) fn kind_of(content: &[u8], media_type: &str) -> (ManifestKind, Option<Manifest>) {
    match Manifest::parse(content, Some(media_type)) {
        Ok(m) => (m.kind(), Some(m)),
        Err(_) => (ManifestKind::Image, None),
    }
}

impl Registry {
    /// The digests of the images `digest` (parsed as `manifest`) reaches in
    /// `repo`: itself when it is an image, every image under it when it is
    /// an index, none when it is an artifact. `Err(DENIED)` past
    /// [`MAX_DEPTH`] or [`MAX_IMAGES`]. A child missing from `repo` cannot
    /// be pulled from it, so it is not reached.
    pub(crate) async fn images_reached(
        &self,
        repo: &str,
        digest: &str,
        manifest: Option<&Manifest>,
    ) -> Result<Vec<String>, RegistryError> {
        let too_many = |what: String| RegistryError::Denied(format!("{digest} in {repo}: {what}"));
        let mut images = Vec::new();
        let mut seen = HashSet::from([digest.to_string()]);
        let mut descriptors = 0;
        // Digests only: each child is read and parsed when its turn comes,
        // so one manifest at a time is held.
        let mut level: Vec<String> = vec![digest.to_string()];
        for depth in 0..=MAX_DEPTH {
            let mut next = Vec::new();
            for d in level {
                let parsed = if d == digest {
                    manifest.cloned()
                } else {
                    let Ok(child) = d.parse::<Digest>() else { continue };
                    match self.meta.get_manifest(repo, &Reference::Digest(child)).await? {
                        Some(s) => kind_of(&s.content, &s.media_type).1,
                        None => continue,
                    }
                };
                match parsed.as_ref().map_or(ManifestKind::Image, Manifest::kind) {
                    ManifestKind::Artifact => {}
                    ManifestKind::Image => {
                        images.push(d);
                        if images.len() > MAX_IMAGES {
                            return Err(too_many(format!("reaches more than {MAX_IMAGES} images")));
                        }
                    }
                    ManifestKind::Index if depth == MAX_DEPTH => {
                        return Err(too_many(format!("nests indexes more than {MAX_DEPTH} levels deep")));
                    }
                    ManifestKind::Index => {
                        for c in parsed.iter().flat_map(|m| &m.manifests) {
                            descriptors += 1;
                            if descriptors > MAX_DESCRIPTORS {
                                return Err(too_many(format!("lists more than {MAX_DESCRIPTORS} manifests")));
                            }
                            if seen.insert(c.digest.to_string()) {
                                next.push(c.digest.to_string());
                            }
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(images)
    }

    /// [`Registry::images_reached`] from a stored manifest's digest.
    pub(crate) async fn images_reached_by_digest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let d: Digest = digest.parse()?;
        let Some(stored) = self.meta.get_manifest(repo, &Reference::Digest(d)).await? else {
            return Err(RegistryError::ManifestUnknown(format!("{digest} is not in {repo}")));
        };
        let (_, parsed) = kind_of(&stored.content, &stored.media_type);
        self.images_reached(repo, digest, parsed.as_ref()).await
    }
}
