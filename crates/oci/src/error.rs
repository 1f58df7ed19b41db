use thiserror::Error;

/// Everything that can be wrong with a name, digest or manifest a client sent.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OciError {
    #[error("invalid digest {0:?}: expected <algorithm>:<hex>, e.g. sha256:<64 lowercase hex>")]
    InvalidDigest(String),
    #[error("unsupported digest algorithm {0:?}: sha256 and sha512 are supported")]
    UnsupportedAlgorithm(String),
    #[error("invalid repository name {0:?}: lowercase components [a-z0-9]+ separated by '.', '_', '__' or '-', joined by '/', at most 255 characters")]
    InvalidName(String),
    #[error("invalid tag {0:?}: [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error("manifest is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("manifest is invalid: {0}")]
    InvalidManifest(String),
    #[error("Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)")]
    SchemaOne,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("manifest is {0} bytes; the limit is {MAX_MANIFEST_BYTES}")]
    ManifestTooLarge(usize),
}

use crate::MAX_MANIFEST_BYTES;
