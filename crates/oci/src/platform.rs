//! The platforms of a multi-arch index, to pick or visit each image in it.

use serde::Deserialize;

use crate::{Digest, OciError};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = OciError;
    /// `os/arch[/variant]`, as `--platform` flags write it.
    fn from_str(s: &str) -> Result<Platform, OciError> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(String::from),
            }),
            _ => Err(OciError::InvalidManifest(format!(
                "platform {s:?} is not os/arch[/variant]"
            ))),
        }
    }
}

/// One entry of an index: which manifest, for which platform (if stated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: Digest,
    pub media_type: Option<String>,
    pub platform: Option<Platform>,
}

/// The entries of an OCI index or Docker manifest list.
pub fn index_entries(bytes: &[u8]) -> Result<Vec<IndexEntry>, OciError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        manifests: Vec<RawEntry>,
    }
    #[derive(Deserialize)]
    struct RawEntry {
        digest: String,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        platform: Option<Platform>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| OciError::MalformedJson(e.to_string()))?;
    raw.manifests
        .into_iter()
        .map(|e| {
            Ok(IndexEntry {
                digest: e
                    .digest
                    .parse()
                    .map_err(|e| OciError::InvalidManifest(format!("manifests: {e}")))?,
                media_type: e.media_type,
                platform: e.platform,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_print() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in ["linux", "/amd64", "a/b/c/d", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
        let index = br#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000002","size":1}]}"#;
        let entries = index_entries(index).unwrap();
        assert_eq!(entries[0].platform.as_ref().unwrap().to_string(), "linux/amd64");
        assert!(entries[1].platform.is_none());
        assert!(index_entries(br#"{"manifests":[{"digest":"md5:x"}]}"#).is_err());
    }
}
