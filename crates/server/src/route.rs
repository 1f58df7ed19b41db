//! Maps a `/v2/…` path to what it names. Repository names contain slashes,
//! so the path is split at the last route keyword rather than by a router
//! pattern; the name and digest grammars are checked here, once.

use portcullis_oci::{Digest, OciError, Reference, RepositoryName};

#[derive(Debug, PartialEq)]
pub enum Route {
    Base,
    Catalog,
    Tags(RepositoryName),
    Manifest(RepositoryName, Reference),
    /// A manifest path whose reference is neither a tag nor a digest. It is
    /// answered after authorization, as the repository it names is valid:
    /// a read finds nothing (404, as the distribution spec's conformance
    /// suite and Distribution answer), a push is refused as invalid.
    BadReference(RepositoryName, OciError),
    Blob(RepositoryName, Digest),
    Uploads(RepositoryName),
    Upload(RepositoryName, String),
    Referrers(RepositoryName, Digest),
}

impl Route {
    /// The repository a manifest, blob or upload route names (what a
    /// pull-through cache serves or refuses).
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Route::Manifest(n, _)
            | Route::BadReference(n, _)
            | Route::Blob(n, _)
            | Route::Uploads(n)
            | Route::Upload(n, _) => Some(n),
            _ => None,
        }
    }
}

/// `None` when the path is not an API route at all (404 NOT_FOUND);
/// `Some(Err)` when it is one with a bad name, digest or tag.
pub fn parse(path: &str) -> Option<Result<Route, OciError>> {
    let rest = path.strip_prefix("/v2/")?;
    if rest.is_empty() {
        return Some(Ok(Route::Base));
    }
    if rest == "_catalog" {
        return Some(Ok(Route::Catalog));
    }
    let name = |n: &str| n.parse::<RepositoryName>();
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Some(name(n).map(Route::Tags));
    }
    if let Some((n, r)) = rest.rsplit_once("/manifests/") {
        return Some(name(n).map(|n| match r.parse() {
            Ok(r) => Route::Manifest(n, r),
            Err(e) => Route::BadReference(n, e),
        }));
    }
    if let Some((n, r)) = rest.rsplit_once("/referrers/") {
        return Some(name(n).and_then(|n| Ok(Route::Referrers(n, r.parse()?))));
    }
    if let Some((n, id)) = rest.rsplit_once("/blobs/uploads/") {
        if id.is_empty() {
            return Some(name(n).map(Route::Uploads));
        }
        if id.contains('/') {
            return None;
        }
        return Some(name(n).map(|n| Route::Upload(n, id.to_string())));
    }
    if let Some(n) = rest.strip_suffix("/blobs/uploads") {
        return Some(name(n).map(Route::Uploads));
    }
    if let Some((n, d)) = rest.rsplit_once("/blobs/") {
        return Some(name(n).and_then(|n| Ok(Route::Blob(n, d.parse()?))));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        let dg = Digest::sha256_of(b"x");
        let n = |s: &str| s.parse::<RepositoryName>().unwrap();
        let cases: Vec<(String, Option<Result<Route, ()>>)> = vec![
            ("/v2/".into(), Some(Ok(Route::Base))),
            ("/v2/_catalog".into(), Some(Ok(Route::Catalog))),
            ("/v2/a/b/tags/list".into(), Some(Ok(Route::Tags(n("a/b"))))),
            (
                "/v2/a/manifests/v1".into(),
                Some(Ok(Route::Manifest(n("a"), Reference::Tag("v1".into())))),
            ),
            (
                format!("/v2/a/manifests/{dg}"),
                Some(Ok(Route::Manifest(n("a"), Reference::Digest(dg.clone())))),
            ),
            // A repository may be named like a route keyword.
            (
                "/v2/x/manifests/y/manifests/v1".into(),
                Some(Ok(Route::Manifest(n("x/manifests/y"), Reference::Tag("v1".into())))),
            ),
            (
                format!("/v2/org/blobs/blobs/{dg}"),
                Some(Ok(Route::Blob(n("org/blobs"), dg.clone()))),
            ),
            ("/v2/a/b/blobs/uploads/".into(), Some(Ok(Route::Uploads(n("a/b"))))),
            ("/v2/a/b/blobs/uploads".into(), Some(Ok(Route::Uploads(n("a/b"))))),
            (
                "/v2/a/blobs/uploads/abc-1".into(),
                Some(Ok(Route::Upload(n("a"), "abc-1".into()))),
            ),
            (
                format!("/v2/a/referrers/{dg}"),
                Some(Ok(Route::Referrers(n("a"), dg.clone()))),
            ),
            ("/v2/A/tags/list".into(), Some(Err(()))),
            (
                "/v2/a/manifests/bad:digest".into(),
                Some(Ok(Route::BadReference(
                    n("a"),
                    OciError::UnsupportedAlgorithm("bad".into()),
                ))),
            ),
            (
                "/v2/a/manifests/-tag".into(),
                Some(Ok(Route::BadReference(n("a"), OciError::InvalidTag("-tag".into())))),
            ),
            ("/v2/A/manifests/v1".into(), Some(Err(()))),
            ("/v2/a/blobs/sha256:abc".into(), Some(Err(()))),
            ("/v2/a/referrers/v1".into(), Some(Err(()))),
            ("/v2/a".into(), None),
            ("/v1/a/tags/list".into(), None),
            ("/v2/a/blobs/uploads/x/y".into(), None),
        ];
        for (path, want) in cases {
            let got = parse(&path).map(|r| r.map_err(|_| ()));
            assert_eq!(got, want, "{path}");
        }
    }
}
