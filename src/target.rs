//! Where `portcullis scan` finds an image, named the way skopeo users
//! already write it: `oci:DIR[:TAG]` (or a bare directory), `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE` and `docker://HOST/REPO[:TAG|@DIGEST]`.
//!
//! Resolving a target reads only small JSON documents; layers are opened
//! one at a time, streaming, when the scanner asks for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use portcullis_oci::{index_entries, media_type, Digest, Manifest, Platform};
use portcullis_scan::layer::links::Found;
use portcullis_scan::layer::{read_files, read_layer_with, LayerError, LayerFacts, Limits, Threads};

use portcullis_registry_client::{ImageRef, RegistryClient};

/// The largest index, manifest or config read into memory.
const MAX_DOCUMENT_BYTES: u64 = 16 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    OciDir {
        dir: PathBuf,
        tag: Option<String>,
    },
    OciArchive {
        file: PathBuf,
        tag: Option<String>,
    },
    DockerArchive {
        file: PathBuf,
    },
    Registry {
        host: String,
        repository: String,
        reference: String,
    },
}

/// `PATH:TAG` where TAG has no `/` (a path may contain `:` only before the last `/`).
fn path_and_tag(rest: &str) -> (PathBuf, Option<String>) {
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (PathBuf::from(path), Some(tag.to_string())),
        _ => (PathBuf::from(rest), None),
    }
}

impl FromStr for Target {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Target> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = path_and_tag(rest);
            return Ok(Target::OciDir { dir, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = path_and_tag(rest);
            return Ok(Target::OciArchive { file, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return Ok(Target::DockerArchive {
                file: PathBuf::from(rest),
            });
        }
        if s.starts_with("docker://") {
            let image: ImageRef = s.parse()?;
            return Ok(Target::Registry {
                host: image.host,
                repository: image.repository,
                reference: image.reference,
            });
        }
        if Path::new(s).is_dir() {
            return Ok(Target::OciDir {
                dir: PathBuf::from(s),
                tag: None,
            });
        }
        bail!("{s}: not a directory, and not oci:, oci-archive:, docker-archive: or docker://")
    }
}

/// How to reach a registry target.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub registry: portcullis_registry_client::Access,
    /// For a multi-arch index; default `linux/amd64`.
    pub platform: Option<Platform>,
}

/// Where one layer's bytes are.
enum LayerSource {
    File(PathBuf),
    /// A member of a tar archive.
    Slice {
        file: PathBuf,
        offset: u64,
        size: u64,
    },
    Remote(Arc<RegistryClient>),
}

pub struct Layer {
    pub digest: String,
    source: LayerSource,
}

/// An image ready to scan.
pub struct ResolvedImage {
    pub name: String,
    pub manifest_digest: Option<String>,
    pub platform: Option<String>,
    pub layers: Vec<Layer>,
}

impl Layer {
    /// Reads the layer into its facts, off the async threads. Registry
    /// layers are checked against their digest as they stream by.
    pub async fn facts(&self, limits: Limits, threads: Threads) -> anyhow::Result<LayerFacts> {
        self.read(move |r| read_layer_with(r, &limits, threads)).await
    }

    /// The files at `wanted` paths (for following linked package databases).
    pub async fn files(&self, limits: Limits, wanted: BTreeSet<String>) -> anyhow::Result<BTreeMap<String, Found>> {
        self.read(move |r| read_files(r, &wanted, &limits)).await
    }

    async fn read<T: Send + 'static>(
        &self,
        parse: impl FnOnce(&mut dyn Read) -> Result<T, LayerError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let digest = self.digest.clone();
        match &self.source {
            LayerSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let mut file = File::open(&path).with_context(|| format!("opening layer {}", path.display()))?;
                    parse(&mut file).with_context(|| format!("layer {digest}"))
                })
                .await?
            }
            LayerSource::Slice { file, offset, size } => {
                let (path, offset, size) = (file.clone(), *offset, *size);
                tokio::task::spawn_blocking(move || {
                    let mut file = File::open(&path)?;
                    file.seek(SeekFrom::Start(offset))?;
                    parse(&mut file.take(size)).with_context(|| format!("layer {digest}"))
                })
                .await?
            }
            LayerSource::Remote(client) => Ok(client.read_blob(&digest, parse).await?),
        }
    }
}

pub async fn resolve(target: &Target, access: &Access) -> anyhow::Result<ResolvedImage> {
    let platform = access.platform.clone().unwrap_or(Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    });
    match target {
        Target::OciDir { dir, tag } => {
            let blobs = Blobs::Dir(dir.clone());
            let name = format!(
                "oci:{}{}",
                dir.display(),
                tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
            );
            layout_image(&blobs, tag.as_deref(), &platform, name)
        }
        Target::OciArchive { file, tag } => {
            let blobs = Blobs::archive(file)?;
            let name = format!("oci-archive:{}", file.display());
            layout_image(&blobs, tag.as_deref(), &platform, name)
        }
        Target::DockerArchive { file } => docker_archive(file),
        Target::Registry {
            host,
            repository,
            reference,
        } => {
            let client = Arc::new(RegistryClient::new(host, repository, &access.registry)?);
            let (digest, manifest, chosen) = image_manifest(&client, reference, &platform).await?;
            Ok(ResolvedImage {
                name: format!("docker://{host}/{repository}:{reference}"),
                manifest_digest: Some(digest),
                platform: chosen,
                layers: manifest
                    .layers
                    .iter()
                    .map(|d| Layer {
                        digest: d.digest.to_string(),
                        source: LayerSource::Remote(client.clone()),
                    })
                    .collect(),
            })
        }
    }
}

/// The blobs of an OCI layout, in a directory or a tar archive of one.
enum Blobs {
    Dir(PathBuf),
    Archive {
        file: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

impl Blobs {
    /// Indexes an archive's members by path in one pass over its headers.
    fn archive(path: &Path) -> anyhow::Result<Blobs> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        for entry in archive
            .entries_with_seek()
            .with_context(|| format!("{} is not a tar archive", path.display()))?
        {
            let entry = entry.with_context(|| format!("reading {}", path.display()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes())
                .trim_start_matches("./")
                .to_string();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(Blobs::Archive {
            file: path.to_path_buf(),
            members,
        })
    }

    fn source(&self, member: &str) -> anyhow::Result<LayerSource> {
        match self {
            Blobs::Dir(dir) => {
                let path = dir.join(member);
                anyhow::ensure!(path.is_file(), "{} is missing", path.display());
                Ok(LayerSource::File(path))
            }
            Blobs::Archive { file, members } => {
                let (offset, size) = members
                    .get(member)
                    .ok_or_else(|| anyhow!("{}: no member {member}", file.display()))?;
                Ok(LayerSource::Slice {
                    file: file.clone(),
                    offset: *offset,
                    size: *size,
                })
            }
        }
    }

    /// A small JSON document (index, manifest, config), size-bounded.
    fn read(&self, member: &str) -> anyhow::Result<Vec<u8>> {
        let reader: Box<dyn Read> = match self.source(member)? {
            LayerSource::File(path) => Box::new(File::open(path)?),
            LayerSource::Slice { file, offset, size } => {
                let mut f = File::open(file)?;
                f.seek(SeekFrom::Start(offset))?;
                Box::new(f.take(size))
            }
            LayerSource::Remote(_) => unreachable!("layouts are local"),
        };
        read_bounded(reader, member)
    }

    fn blob_path(digest: &Digest) -> String {
        format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
    }
}

fn read_bounded(reader: impl Read, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_DOCUMENT_BYTES,
        "{what} is larger than {MAX_DOCUMENT_BYTES} bytes"
    );
    Ok(bytes)
}

fn layout_image(blobs: &Blobs, tag: Option<&str>, platform: &Platform, name: String) -> anyhow::Result<ResolvedImage> {
    let index_bytes = blobs.read("index.json").context("not an OCI layout")?;
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).context("index.json is not JSON")?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let ref_name = |e: &serde_json::Value| e["annotations"][REF_NAME].as_str().map(String::from);
    let chosen = match tag {
        Some(tag) => entries.iter().find(|e| ref_name(e).as_deref() == Some(tag)),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let Some(entry) = chosen else {
        let tags: Vec<String> = entries.iter().filter_map(ref_name).collect();
        bail!(
            "{name}: {} (tags here: {})",
            if tag.is_some() {
                "no such tag"
            } else {
                "several images; name one with :TAG"
            },
            if tags.is_empty() {
                "none".into()
            } else {
                tags.join(", ")
            }
        );
    };
    let digest: Digest = entry["digest"]
        .as_str()
        .ok_or_else(|| anyhow!("index.json entry without a digest"))?
        .parse()?;
    let mut media = entry["mediaType"].as_str().map(String::from);
    let mut bytes = blobs.read(&Blobs::blob_path(&digest))?;
    let mut manifest_digest = digest;
    let mut chosen_platform = None;
    if media.as_deref().is_some_and(media_type::is_index) || looks_like_index(&bytes) {
        let (d, p) = pick_platform(&bytes, platform)?;
        bytes = blobs.read(&Blobs::blob_path(&d))?;
        manifest_digest = d;
        chosen_platform = Some(p);
        media = None;
    }
    let manifest = Manifest::parse(&bytes, media.as_deref()).context("the image manifest")?;
    let layers = manifest
        .layers
        .iter()
        .map(|d| {
            Ok(Layer {
                digest: d.digest.to_string(),
                source: blobs.source(&Blobs::blob_path(&d.digest))?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ResolvedImage {
        name,
        manifest_digest: Some(manifest_digest.to_string()),
        platform: chosen_platform,
        layers,
    })
}

/// The image manifest `reference` names, through an index if need be.
async fn image_manifest(
    client: &RegistryClient,
    reference: &str,
    platform: &Platform,
) -> anyhow::Result<(String, Manifest, Option<String>)> {
    let mut m = client.manifest(reference).await?;
    let mut chosen = None;
    if m.media_type.as_deref().is_some_and(media_type::is_index) || looks_like_index(&m.bytes) {
        let (d, p) = pick_platform(&m.bytes, platform)?;
        m = client.manifest(d.as_str()).await?;
        chosen = Some(p);
    }
    let manifest = Manifest::parse(&m.bytes, m.media_type.as_deref()).context("the image manifest")?;
    Ok((m.digest.to_string(), manifest, chosen))
}

fn looks_like_index(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("manifests").is_some())
}

/// The entry of an index for `platform`, or an error naming what is there.
fn pick_platform(index: &[u8], platform: &Platform) -> anyhow::Result<(Digest, String)> {
    let entries = index_entries(index)?;
    let matches = |p: &Platform| {
        p.os == platform.os
            && p.architecture == platform.architecture
            && (platform.variant.is_none() || p.variant == platform.variant)
    };
    if let Some(e) = entries.iter().find(|e| e.platform.as_ref().is_some_and(matches)) {
        return Ok((e.digest.clone(), e.platform.as_ref().expect("matched").to_string()));
    }
    let have: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
        .collect();
    bail!(
        "the index has no image for {platform} (it has: {}); choose one with --platform",
        have.join(", ")
    )
}

/// `docker save` output: `manifest.json` names the config and the layer
/// files; a layer's digest is its path's (`blobs/sha256/…`) or, in the
/// older layout, the config's `diff_ids` entry for it.
fn docker_archive(file: &Path) -> anyhow::Result<ResolvedImage> {
    let blobs = Blobs::archive(file)?;
    let manifest: serde_json::Value = serde_json::from_slice(
        &blobs
            .read("manifest.json")
            .context("not a docker-archive (no manifest.json)")?,
    )?;
    let image = manifest
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| anyhow!("manifest.json lists no image"))?;
    let config_path = image["Config"]
        .as_str()
        .ok_or_else(|| anyhow!("manifest.json: no Config"))?;
    let config: serde_json::Value = serde_json::from_slice(&blobs.read(config_path)?)?;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    let paths = image["Layers"]
        .as_array()
        .ok_or_else(|| anyhow!("manifest.json: no Layers"))?;
    let mut layers = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let p = p
            .as_str()
            .ok_or_else(|| anyhow!("manifest.json: a layer path is not a string"))?;
        let digest = match p.strip_prefix("blobs/sha256/") {
            Some(hex) => format!("sha256:{hex}"),
            None => diff_ids
                .get(i)
                .and_then(|d| d.as_str())
                .map(String::from)
                .ok_or_else(|| anyhow!("layer {p} has no diff_id in the config"))?,
        };
        layers.push(Layer {
            digest,
            source: blobs.source(p.trim_start_matches("./"))?,
        });
    }
    let tags = image["RepoTags"]
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t.as_str());
    Ok(ResolvedImage {
        name: format!(
            "docker-archive:{}{}",
            file.display(),
            tags.map(|t| format!(" ({t})")).unwrap_or_default()
        ),
        manifest_digest: None,
        platform: None,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_skopeo_names() {
        let cases: &[(&str, Target)] = &[
            (
                "oci:/tmp/layout:v1",
                Target::OciDir {
                    dir: "/tmp/layout".into(),
                    tag: Some("v1".into()),
                },
            ),
            (
                "oci:/tmp/layout",
                Target::OciDir {
                    dir: "/tmp/layout".into(),
                    tag: None,
                },
            ),
            (
                "oci-archive:img.tar:latest",
                Target::OciArchive {
                    file: "img.tar".into(),
                    tag: Some("latest".into()),
                },
            ),
            (
                "docker-archive:/tmp/saved.tar",
                Target::DockerArchive {
                    file: "/tmp/saved.tar".into(),
                },
            ),
            (
                "docker://127.0.0.1:5000/acme/app:42",
                Target::Registry {
                    host: "127.0.0.1:5000".into(),
                    repository: "acme/app".into(),
                    reference: "42".into(),
                },
            ),
            (
                "docker://reg.example/app",
                Target::Registry {
                    host: "reg.example".into(),
                    repository: "app".into(),
                    reference: "latest".into(),
                },
            ),
            (
                "docker://reg.example/a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                Target::Registry {
                    host: "reg.example".into(),
                    repository: "a/b".into(),
                    reference: "sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<Target>().unwrap(), want, "{text}");
        }
        for bad in [
            "docker://hostonly",
            "docker://reg.example/a@sha256:abc",
            "ftp://x/y",
            "/no/such/dir",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
