use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_meta::MetaError;
use portcullis_oci::OciError;
use portcullis_store::StoreError;
use thiserror::Error;

/// A failed registry request, rendered in the distribution spec's error
/// format (`{"errors":[{"code","message","detail"}]}`) with its status.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{0}")]
    BlobUnknown(String),
    #[error("{0}")]
    BlobUploadInvalid(String),
    #[error("upload session not found")]
    BlobUploadUnknown,
    #[error("{message}")]
    RangeNotSatisfiable {
        message: String,
        location: Option<String>,
        size: u64,
    },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("{0}")]
    ManifestTooLarge(String),
    #[error("{0}")]
    ManifestUnknown(String),
    #[error("{0}")]
    NameInvalid(String),
    #[error("{0}")]
    NameUnknown(String),
    #[error("{0}")]
    SizeInvalid(String),
    #[error("{0}")]
    TagInvalid(String),
    #[error("{0}")]
    PaginationInvalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the route does not exist")]
    NotFound,
    /// No credentials, or wrong ones: 401 with a token challenge.
    #[error("{0}")]
    Unauthorized(String),
    /// 401 asking for a token with `scope`; `insufficient` when the token
    /// presented did not grant it.
    #[error("authentication required for {scope}")]
    Challenge { scope: String, insufficient: bool },
    /// A known caller without the right: 403.
    #[error("{0}")]
    Denied(String),
    #[error("too many failed logins; retry in {0} s")]
    TooManyRequests(u64),
    /// Malformed management request: 400.
    #[error("{0}")]
    Invalid(String),
    /// A management object that does not exist: 404.
    #[error("{0}")]
    Absent(String),
    /// A management object that already exists: 409.
    #[error("{0}")]
    Exists(String),
    /// A pull-through cache's upstream did not serve what was asked: 502.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use RegistryError::*;
        match self {
            BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            BlobUploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            ManifestTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID"),
            ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            TagInvalid(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            PaginationInvalid(_) => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID"),
            Conflict(_) => (StatusCode::CONFLICT, "DENIED"),
            Unsupported(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Unauthorized(_) | Challenge { .. } => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            Denied(_) => (StatusCode::FORBIDDEN, "DENIED"),
            TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            Invalid(_) => (StatusCode::BAD_REQUEST, "INVALID"),
            Absent(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Exists(_) => (StatusCode::CONFLICT, "CONFLICT"),
            Upstream(_) => (StatusCode::BAD_GATEWAY, "UNAVAILABLE"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            errors: vec![ErrorEntry {
                code: code.to_string(),
                message: self.to_string(),
                detail: None,
            }],
        };
        // Through a `Value`, whose keys are sorted, as the body always was.
        let body = serde_json::to_value(&body).expect("json").to_string();
        let mut resp = (status, [("content-type", "application/json")], body).into_response();
        if let RegistryError::RangeNotSatisfiable { location, size, .. } = &self {
            let h = resp.headers_mut();
            if let Some(loc) = location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
                h.insert("location", loc);
            }
            h.insert("range", HeaderValue::from_str(&upload_range(*size)).expect("ascii"));
        }
        match self {
            RegistryError::Unauthorized(_) => {
                resp.extensions_mut().insert(NeedsChallenge(None, false));
            }
            RegistryError::Challenge { scope, insufficient } => {
                resp.extensions_mut().insert(NeedsChallenge(Some(scope), insufficient));
            }
            RegistryError::TooManyRequests(secs) => {
                resp.headers_mut().insert("retry-after", HeaderValue::from(secs));
            }
            _ => {}
        }
        resp
    }
}

/// The body of every refusal, the distribution spec's error format.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// One entry.
    pub errors: Vec<ErrorEntry>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorEntry {
    /// `UNAUTHORIZED` (401), `DENIED` (403), `INVALID` (400), `NOT_FOUND`
    /// (404), `CONFLICT` (409), `TOOMANYREQUESTS` (429, with
    /// `Retry-After`), `UNKNOWN` (500), or a distribution spec code
    /// (`NAME_INVALID`, `DIGEST_INVALID`, `TAG_INVALID`, …).
    #[schema(example = "INVALID")]
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Always `null` here.
    pub detail: Option<serde_json::Value>,
}

/// Marks a 401 whose `WWW-Authenticate` challenge the outer middleware adds
/// (it knows the request's host): the scope to ask for, and whether the
/// presented token fell short.
#[derive(Debug, Clone)]
pub(crate) struct NeedsChallenge(pub Option<String>, pub bool);

/// The `Range` header of an upload holding `size` bytes: `0-<last byte>`,
/// and `0-0` when empty, as Distribution answers and clients expect.
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<OciError> for RegistryError {
    fn from(e: OciError) -> Self {
        match e {
            OciError::InvalidDigest(_) | OciError::UnsupportedAlgorithm(_) => {
                RegistryError::DigestInvalid(e.to_string())
            }
            OciError::InvalidName(_) => RegistryError::NameInvalid(e.to_string()),
            OciError::InvalidTag(_) => RegistryError::TagInvalid(e.to_string()),
            OciError::ManifestTooLarge(_) => RegistryError::ManifestTooLarge(e.to_string()),
            OciError::MalformedJson(_)
            | OciError::InvalidManifest(_)
            | OciError::SchemaOne
            | OciError::UnsupportedMediaType(_) => RegistryError::ManifestInvalid(e.to_string()),
        }
    }
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::BlobUnknown(d) => {
                RegistryError::ManifestBlobUnknown(format!("blob {d} is not in this repository"))
            }
            MetaError::ManifestUnknown(d) => {
                RegistryError::ManifestBlobUnknown(format!("manifest {d} is not in this repository"))
            }
            MetaError::ManifestReferenced { .. } | MetaError::BlobReferenced(_) => {
                RegistryError::Conflict(e.to_string())
            }
            MetaError::Conflict(_) => RegistryError::Exists(e.to_string()),
            MetaError::Missing(_) => RegistryError::Absent(e.to_string()),
            MetaError::NamespaceInUse(_) => RegistryError::Denied(e.to_string()),
            MetaError::Reserved(_) => RegistryError::Invalid(e.to_string()),
            MetaError::TagImmutable { .. } => RegistryError::Denied(e.to_string()),
            other => RegistryError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UploadUnknown => RegistryError::BlobUploadUnknown,
            StoreError::RangeMismatch { current, .. } => RegistryError::RangeNotSatisfiable {
                message: e.to_string(),
                location: None,
                size: current,
            },
            StoreError::DigestMismatch { .. } => RegistryError::DigestInvalid(e.to_string()),
            StoreError::Body(_) => RegistryError::BlobUploadInvalid(e.to_string()),
            StoreError::Io(io) => RegistryError::Internal(io.to_string()),
        }
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::Internal(e.to_string())
    }
}
