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
/// Images one manifest may reach; more is refused, never cut short.
pub(crate) const MAX_IMAGES: usize = 1024;

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
        let mut images = Vec::new();
        let mut seen = HashSet::new();
        let mut level: Vec<(String, Option<Manifest>)> = vec![(digest.to_string(), manifest.cloned())];
        for depth in 0..=MAX_DEPTH {
            let mut next = Vec::new();
            for (d, m) in level {
                if !seen.insert(d.clone()) {
                    continue;
                }
                match m.as_ref().map_or(ManifestKind::Image, Manifest::kind) {
                    ManifestKind::Artifact => {}
                    ManifestKind::Image => {
                        images.push(d);
                        if images.len() > MAX_IMAGES {
                            return Err(RegistryError::Denied(format!(
                                "{digest} in {repo} reaches more than {MAX_IMAGES} images"
                            )));
                        }
                    }
                    ManifestKind::Index if depth == MAX_DEPTH => {
                        return Err(RegistryError::Denied(format!(
                            "{digest} in {repo} nests indexes more than {MAX_DEPTH} levels deep"
                        )));
                    }
                    ManifestKind::Index => {
                        for child in m.iter().flat_map(|m| &m.manifests) {
                            let stored = self
                                .meta
                                .get_manifest(repo, &Reference::Digest(child.digest.clone()))
                                .await?;
                            if let Some(s) = stored {
                                let (_, parsed) = kind_of(&s.content, &s.media_type);
                                next.push((s.digest, parsed));
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
