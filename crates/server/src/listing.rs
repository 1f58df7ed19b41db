//! Tag list, catalog and referrers: paged lists in the spec's formats.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_oci::{media_type, Digest, RepositoryName};
use serde_json::json;

use crate::access::Caller;
use crate::{query_param, Handled, Registry, RegistryError};
use portcullis_auth::Actions;

/// Largest page one request returns; a larger `n` gets this many and a `Link`.
const MAX_PAGE: i64 = 10_000;
/// Without `n` clients expect the whole list; past this they get a `Link`.
const UNPAGED_LIMIT: i64 = 100_000;

struct Page {
    n: i64,
    last: Option<String>,
}

fn page(query: &str) -> Result<Page, RegistryError> {
    let n = match query_param(query, "n") {
        None => UNPAGED_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| RegistryError::PaginationInvalid(format!("n={s:?} is not a non-negative integer")))?
            .min(MAX_PAGE),
    };
    Ok(Page {
        n,
        last: query_param(query, "last"),
    })
}

/// Cuts a page fetched with one extra row down to `n`, and builds the
/// `Link` to the next page exactly when that extra row shows more follow.
fn paged(mut items: Vec<String>, n: i64, path: &str) -> (Vec<String>, Option<HeaderValue>) {
    let more = items.len() as i64 > n;
    items.truncate(n as usize);
    let link = match items.last() {
        Some(last) if more => {
            let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
            HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")).ok()
        }
        _ => None,
    };
    (items, link)
}

fn json_response(
    content_type: &'static str,
    body: serde_json::Value,
    extra: Option<(&'static str, HeaderValue)>,
) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    if let Some((k, v)) = extra {
        resp.headers_mut().insert(k, v);
    }
    resp
}

pub(crate) async fn tags(reg: &Registry, name: &RepositoryName, query: &str) -> Handled {
    let p = page(query)?;
    if !reg.meta.repository_exists(name.as_str()).await? {
        return Err(RegistryError::NameUnknown(format!("repository {name} is not known")));
    }
    let rows = if p.n == 0 {
        Vec::new()
    } else {
        reg.meta.list_tags(name.as_str(), p.last.as_deref(), p.n + 1).await?
    };
    let (tags, link) = paged(rows, p.n, &format!("/v2/{name}/tags/list"));
    Ok(json_response(
        "application/json",
        json!({"name": name.as_str(), "tags": tags}),
        link.map(|l| ("link", l)),
    ))
}

/// The repositories the caller may pull from, paged: one query per page
/// decides what the account may read (see `Meta::readable_repositories`),
/// then a token's scope limits filter it in memory. A registry token's
/// own grants name only the repositories it was issued for, so the catalog
/// asks about its account's live rights instead.
pub(crate) async fn catalog(reg: &Registry, caller: &Caller, query: &str) -> Handled {
    let p = page(query)?;
    let rows = readable_page(reg, caller, p.last.as_deref(), p.n, "").await?;
    let (repos, link) = paged(rows, p.n, "/v2/_catalog");
    Ok(json_response(
        "application/json",
        json!({"repositories": repos}),
        link.map(|l| ("link", l)),
    ))
}

/// Up to `n + 1` names of repositories `caller` may pull, after `last`,
/// containing `containing` (one more than asked: the caller pages with it).
pub(crate) async fn readable_page(
    reg: &Registry,
    caller: &Caller,
    last: Option<&str>,
    n: i64,
    containing: &str,
) -> Result<Vec<String>, RegistryError> {
    let principal = reg.principal(caller).await?;
    let anonymous_pull = reg.access.settings.anonymous != crate::Anonymous::None;
    let account = principal.as_ref().map(|p| &p.account);
    let everything = anonymous_pull || account.is_some_and(|a| a.admin);
    let mut rows = Vec::new();
    let mut last = last.map(str::to_string);
    while n > 0 && rows.len() <= n as usize {
        let batch = reg
            .meta
            .readable_repositories(account, everything, last.as_deref(), n + 1, containing)
            .await?;
        let exhausted = batch.len() <= n as usize;
        last = batch.last().cloned();
        for name in batch {
            let limited = principal
                .as_ref()
                .and_then(|p| p.scopes.as_ref())
                .is_some_and(|s| !portcullis_auth::TokenScope::allowed(s, &name).contains(Actions::PULL));
            if rows.len() <= n as usize && !limited {
                rows.push(name);
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(rows)
}

pub(crate) async fn referrers(reg: &Registry, name: &RepositoryName, digest: &Digest, query: &str) -> Handled {
    let filter = query_param(query, "artifactType").filter(|s| !s.is_empty());
    let found = reg.meta.referrers(name.as_str(), digest, filter.as_deref()).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({"mediaType": r.media_type, "digest": r.digest, "size": r.size});
            if let Some(at) = r.artifact_type {
                d["artifactType"] = json!(at);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests});
    let applied = filter.map(|_| ("oci-filters-applied", HeaderValue::from_static("artifactType")));
    Ok(json_response(media_type::OCI_INDEX, body, applied))
}
