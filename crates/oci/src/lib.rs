//! The vocabulary of the OCI image and distribution specifications:
//! digests, repository names, tags, references and manifests.
//!
//! Pure by design: every function takes bytes or strings and returns values,
//! so the grammar can be tested with tables and property tests, and the
//! server never has to trust a client's idea of what a digest or a manifest is.

mod digest;
mod error;
mod manifest;
pub mod media_type;
mod name;
pub mod platform;

pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::OciError;
pub use manifest::{Descriptor, Manifest, ManifestKind, MAX_MANIFEST_BYTES};
pub use name::{cosign_tag_subject, validate_tag, Reference, RepositoryName};
pub use platform::{index_entries, IndexEntry, Platform};
