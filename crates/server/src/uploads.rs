//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic or
//! mount), then `PATCH`/`PUT`/`GET`/`DELETE` on the session's location.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_oci::{Algorithm, Digest, RepositoryName};
use uuid::Uuid;

use crate::access::Caller;
use crate::error::upload_range;
use crate::{header_str, query_param, Actions, Handled, Need, Registry, RegistryError};

fn blob_created(name: &RepositoryName, digest: &Digest) -> Response {
    crate::created(&format!("/v2/{name}/blobs/{digest}"), digest)
}

fn session_response(status: StatusCode, name: &RepositoryName, id: &Uuid, size: u64) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("location", HeaderValue::from_str(&location(name, id)).expect("ascii"));
    h.insert("range", HeaderValue::from_str(&upload_range(size)).expect("ascii"));
    h.insert(
        "docker-upload-uuid",
        HeaderValue::from_str(&id.to_string()).expect("ascii"),
    );
    h.insert("content-length", HeaderValue::from(0));
    resp
}

fn location(name: &RepositoryName, id: &Uuid) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn digest_param(query: &str) -> Result<Option<Digest>, RegistryError> {
    query_param(query, "digest")
        .map(|d| d.parse::<Digest>().map_err(RegistryError::from))
        .transpose()
}

/// Verifies an upload against `digest` and makes it visible in `name`.
async fn complete(reg: &Registry, name: &RepositoryName, id: Uuid, digest: &Digest) -> Result<(), RegistryError> {
    let verified = reg.store.verify_upload(id, digest).await?;
    let size = verified.size;
    reg.meta
        .insert_blob(name.as_str(), digest, size, || reg.store.publish(verified))
        .await?;
    Ok(())
}

/// Where a `?mount=` request may take its blob from: `from` if the caller
/// may pull it; without `from` (OCI 1.1), the first repository holding the
/// blob that the caller's token may pull. `None` makes the request a normal
/// upload, so the answer says nothing about repositories the caller cannot
/// read.
///
/// A registry token that never asked for `from` gets a challenge naming
/// both scopes instead (as Distribution answers), so the client fetches a
/// wider token and mounts. A token that asked and was refused (it lists
/// `from` with no actions) gets the upload, so a client never loops.
pub(crate) async fn mount_source(
    reg: &Registry,
    caller: &Caller,
    target: &RepositoryName,
    query: &str,
) -> Result<Option<RepositoryName>, RegistryError> {
    let Some(mount) = query_param(query, "mount") else {
        return Ok(None);
    };
    let digest: Digest = mount.parse()?;
    let may_pull = |repo: RepositoryName| async move {
        let allowed = reg
            .authorize(caller, Need::Repository(repo.as_str(), Actions::PULL))
            .await;
        allowed.is_ok().then_some(repo)
    };
    if let Some(from) = query_param(query, "from") {
        let from: RepositoryName = from.parse()?;
        if let Some(from) = may_pull(from.clone()).await {
            return Ok(Some(from));
        }
        if let Caller::Bearer(claims) = caller {
            let asked = claims
                .access
                .iter()
                .any(|a| a.kind == "repository" && a.name == from.as_str());
            if !asked {
                return Err(RegistryError::Challenge {
                    scope: format!("repository:{target}:pull,push repository:{from}:pull"),
                    insufficient: true,
                });
            }
        }
        return Ok(None);
    }
    for repo in reg.meta.repositories_with_blob(&digest, MOUNT_CANDIDATES).await? {
        if let Some(from) = may_pull(repo.parse()?).await {
            return Ok(Some(from));
        }
    }
    Ok(None)
}

/// How many repositories holding a blob a fromless mount considers.
const MOUNT_CANDIDATES: i64 = 64;

/// `from`: a repository the caller may pull the blob from (see
/// `mount_source`); without one a mount request is a normal upload, as if
/// the blob were not there. `owner` (the caller's account) is the only one
/// who may use the session.
pub(crate) async fn start(
    reg: &Registry,
    name: &RepositoryName,
    owner: &str,
    query: &str,
    from: Option<RepositoryName>,
    body: Body,
) -> Handled {
    if let Some(mount) = query_param(query, "mount") {
        let digest: Digest = mount.parse()?;
        if let Some(from) = from {
            // Not mountable (unknown there, or its file is missing): a normal
            // session, as the spec's fallback says.
            if reg.store.blob_size(&digest).await?.is_some()
                && reg
                    .meta
                    .mount_blob(name.as_str(), from.as_str(), &digest)
                    .await?
                    .is_some()
            {
                return Ok(blob_created(name, &digest));
            }
        }
    }
    if let Some(digest) = digest_param(query)? {
        // Monolithic upload in a single POST.
        let id = reg.store.start_upload(digest.algorithm()).await?;
        let result = async {
            let (_, written) = reg.store.append(id, None, body.into_data_stream()).await?;
            reg.metrics.add_bytes_in(written);
            complete(reg, name, id, &digest).await
        }
        .await;
        if result.is_err() {
            let _ = reg.store.cancel_upload(id).await;
        }
        result?;
        return Ok(blob_created(name, &digest));
    }
    let algorithm = match query_param(query, "digest-algorithm").as_deref() {
        None | Some("sha256") => Algorithm::Sha256,
        Some("sha512") => Algorithm::Sha512,
        Some(other) => {
            return Err(RegistryError::DigestInvalid(format!(
                "unsupported digest algorithm {other:?}"
            )))
        }
    };
    let id = reg.store.start_upload(algorithm).await?;
    reg.meta.create_upload(&id.to_string(), name.as_str(), owner).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// Finds an upload session, which must belong to `name` and have been
/// opened by `owner`: another caller, even one with push rights, does not
/// learn that it exists.
async fn session(reg: &Registry, name: &RepositoryName, owner: &str, id: &str) -> Result<Uuid, RegistryError> {
    let uuid = id.parse::<Uuid>().map_err(|_| RegistryError::BlobUploadUnknown)?;
    match reg.meta.upload_session(&uuid.to_string()).await? {
        Some((repo, opener)) if repo == name.as_str() && opener.as_deref().is_none_or(|o| o == owner) => Ok(uuid),
        _ => Err(RegistryError::BlobUploadUnknown),
    }
}

/// The first byte's offset from `Content-Range: <start>-<end>`, checked
/// against `Content-Length` when both are present.
fn chunk_start(headers: &HeaderMap, current: impl Fn() -> u64) -> Result<Option<u64>, RegistryError> {
    let Some(cr) = header_str(headers, "content-range") else {
        return Ok(None);
    };
    let spec = cr.trim().trim_start_matches("bytes").trim_start_matches(['=', ' ']);
    let parsed = spec
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let Some((start, end)) = parsed.filter(|(a, b)| b >= a) else {
        return Err(RegistryError::RangeNotSatisfiable {
            message: format!("invalid Content-Range {cr:?}: expected <start>-<end>"),
            location: None,
            size: current(),
        });
    };
    let length = header_str(headers, "content-length").and_then(|l| l.parse::<u64>().ok());
    if let Some(len) = length {
        // `0-18446744073709551615` spans 2^64 bytes: no Content-Length matches it.
        if Some(len) != (end - start).checked_add(1) {
            return Err(RegistryError::RangeNotSatisfiable {
                message: format!("Content-Range {cr:?} does not match Content-Length {len}"),
                location: None,
                size: current(),
            });
        }
    }
    Ok(Some(start))
}

async fn append(
    reg: &Registry,
    name: &RepositoryName,
    id: Uuid,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64, RegistryError> {
    let current = reg.store.upload_size(id).await?;
    let with_location = |e: RegistryError| match e {
        RegistryError::RangeNotSatisfiable { message, size, .. } => RegistryError::RangeNotSatisfiable {
            message,
            location: Some(location(name, &id)),
            size,
        },
        other => other,
    };
    let start = chunk_start(headers, || current).map_err(with_location)?;
    let result = reg.store.append(id, start, body.into_data_stream()).await;
    let (size, written) = result.map_err(|e| with_location(e.into()))?;
    reg.metrics.add_bytes_in(written);
    reg.meta.touch_upload(&id.to_string()).await?;
    Ok(size)
}

pub(crate) async fn patch(
    reg: &Registry,
    name: &RepositoryName,
    owner: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Handled {
    let id = session(reg, name, owner, id).await?;
    let size = append(reg, name, id, headers, body).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, size))
}

pub(crate) async fn finish(
    reg: &Registry,
    name: &RepositoryName,
    owner: &str,
    id: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Handled {
    let id = session(reg, name, owner, id).await?;
    let digest = digest_param(query)?.ok_or_else(|| {
        RegistryError::DigestInvalid("the closing PUT needs ?digest=<digest of the whole blob>".into())
    })?;
    append(reg, name, id, headers, body).await?;
    let result = complete(reg, name, id, &digest).await;
    // Done, or its bytes are gone (a mismatch stores nothing): the session ends either way.
    if result.is_ok() || matches!(result, Err(RegistryError::DigestInvalid(_))) {
        reg.meta.delete_upload(&id.to_string()).await?;
    }
    result?;
    Ok(blob_created(name, &digest))
}

pub(crate) async fn status(reg: &Registry, name: &RepositoryName, owner: &str, id: &str) -> Handled {
    let id = session(reg, name, owner, id).await?;
    let size = reg.store.upload_size(id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, name, &id, size))
}

pub(crate) async fn cancel(reg: &Registry, name: &RepositoryName, owner: &str, id: &str) -> Handled {
    let id = session(reg, name, owner, id).await?;
    let _ = reg.store.cancel_upload(id).await;
    reg.meta.delete_upload(&id.to_string()).await?;
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
