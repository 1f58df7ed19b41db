//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_oci::{Digest, RepositoryName};

use crate::access::Actor;
use crate::{header_str, Handled, Registry, RegistryError};

/// A satisfiable single byte range, inclusive.
#[derive(Debug, PartialEq)]
pub(crate) struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Parses a `Range` header for a blob of `size` bytes. `Ok(None)`: no usable
/// range, serve it all (RFC 9110 lets a server ignore multi-range requests);
/// `Err(())`: well-formed but unsatisfiable, 416.
pub(crate) fn parse_range(header: &str, size: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else { return Ok(None) };
            let end = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            if start >= size {
                return Err(());
            }
            ByteRange { start, end }
        }
        (true, false) => {
            let Ok(suffix) = b.parse::<u64>() else { return Ok(None) };
            if suffix == 0 || size == 0 {
                return Err(());
            }
            ByteRange {
                start: size.saturating_sub(suffix),
                end: size - 1,
            }
        }
        (true, true) => return Ok(None),
    };
    Ok(Some(range))
}

pub(crate) async fn get(
    reg: &Registry,
    name: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
    zero_copy: Option<&crate::zero_copy::FileSlot>,
) -> Handled {
    let unknown = || RegistryError::BlobUnknown(format!("blob {digest} is not in repository {name}"));
    if reg.meta.blob_in_repo(name.as_str(), digest).await?.is_none() {
        return Err(unknown());
    }
    let range = header_str(headers, "range");
    if head && range.is_none() {
        let size = reg.store.blob_size(digest).await?.ok_or_else(unknown)?;
        return Ok(blob_response(StatusCode::OK, digest, size, Body::empty()));
    }
    let (file, size) = reg.store.open_blob(digest).await?.ok_or_else(unknown)?;
    let range = match range.map(|h| parse_range(h, size)) {
        Some(Err(())) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            resp.headers_mut().insert(
                "content-range",
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(resp);
        }
        Some(Ok(r)) => r,
        None => None,
    };
    let (status, start, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head {
        Body::empty()
    } else {
        reg.metrics.add_bytes_out(len);
        match zero_copy {
            Some(slot) if len > 0 => slot.body(file.into_std().await, start, len),
            _ => Body::from_stream(portcullis_store::stream_file(file.into_std().await, start, len)),
        }
    };
    let mut resp = blob_response(status, digest, len, body);
    if let Some(r) = range {
        let v = format!("bytes {}-{}/{size}", r.start, r.end);
        resp.headers_mut()
            .insert("content-range", HeaderValue::from_str(&v).expect("ascii"));
    }
    Ok(resp)
}

pub(crate) fn blob_response(status: StatusCode, digest: &Digest, len: u64, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-length", HeaderValue::from(len));
    h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    let d = HeaderValue::from_str(digest.as_str()).expect("digests are ascii");
    h.insert("etag", HeaderValue::from_str(&format!("\"{digest}\"")).expect("ascii"));
    h.insert("docker-content-digest", d);
    h.insert("cache-control", HeaderValue::from_static("max-age=31536000"));
    resp
}

pub(crate) async fn delete(reg: &Registry, actor: &Actor, name: &RepositoryName, digest: &Digest) -> Handled {
    let ev = actor
        .event("blob.delete")
        .repository(name.as_str())
        .digest(digest.as_str());
    if !reg.meta.unlink_blob(name.as_str(), digest, &ev).await? {
        return Err(RegistryError::BlobUnknown(format!(
            "blob {digest} is not in repository {name}"
        )));
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut().insert(
        "docker-content-digest",
        HeaderValue::from_str(digest.as_str()).expect("ascii"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        let r = |start, end| Ok(Some(ByteRange { start, end }));
        let cases: &[(&str, u64, Result<Option<ByteRange>, ()>)] = &[
            ("bytes=0-9", 100, r(0, 9)),
            ("bytes=90-", 100, r(90, 99)),
            ("bytes=90-200", 100, r(90, 99)),
            ("bytes=-10", 100, r(90, 99)),
            ("bytes=-200", 100, r(0, 99)),
            ("bytes=100-", 100, Err(())),
            ("bytes=100-200", 100, Err(())),
            ("bytes=-0", 100, Err(())),
            ("bytes=5-1", 100, Ok(None)),
            ("bytes=0-1,5-6", 100, Ok(None)),
            ("items=0-1", 100, Ok(None)),
            ("bytes=a-b", 100, Ok(None)),
            ("bytes=0-0", 1, r(0, 0)),
            ("bytes=0-", 0, Err(())),
        ];
        for (h, size, want) in cases {
            assert_eq!(&parse_range(h, *size), want, "{h} of {size}");
        }
    }
}
