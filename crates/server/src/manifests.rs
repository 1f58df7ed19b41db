//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use portcullis_meta::NewManifest;
use portcullis_oci::{
    media_type, validate_tag, Algorithm, Digest, Manifest, Reference, RepositoryName, MAX_MANIFEST_BYTES,
};

use crate::access::Actor;
use crate::cache::CachedManifest;
use crate::webhooks::About;
use crate::{header_str, query_params, Handled, Registry, RegistryError};
use portcullis_auth::Actions;
use serde_json::json;

/// Whether a client's `Accept` headers admit `stored`. No Accept, a
/// wildcard, or no manifest type at all listed means "anything".
pub(crate) fn accepts(headers: &HeaderMap, stored: &str) -> bool {
    let mut listed_manifest_type = false;
    for value in headers.get_all("accept").iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',').map(media_type::essence) {
            if item == stored || item == "*/*" {
                return true;
            }
            listed_manifest_type |= media_type::MANIFEST_TYPES.contains(&item);
        }
    }
    !listed_manifest_type
}

async fn unknown(reg: &Registry, name: &RepositoryName, reference: &Reference) -> RegistryError {
    match reg.meta.repository_exists(name.as_str()).await {
        Ok(false) => RegistryError::NameUnknown(format!("repository {name} is not known")),
        _ => RegistryError::ManifestUnknown(format!("manifest {reference} is not in repository {name}")),
    }
}

/// A manifest by tag or digest, from the cache when it has a fresh copy.
async fn lookup(
    reg: &Registry,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<Option<CachedManifest>, RegistryError> {
    let key = reference.to_string();
    if let Some(m) = reg.manifests.get(name.as_str(), &key) {
        return Ok(Some(m));
    }
    let generation = reg.manifests.generation();
    let Some(m) = reg.meta.get_manifest(name.as_str(), reference).await? else {
        reg.manifests.forget(name.as_str(), &key);
        return Ok(None);
    };
    let m = CachedManifest {
        digest: m.digest.into(),
        media_type: m.media_type.into(),
        content: m.content.into(),
    };
    reg.manifests.put(generation, name.as_str(), &key, m.clone());
    Ok(Some(m))
}

/// Whether the account behind `caller` may push to `repo` now.
async fn account_may_push(reg: &Registry, caller: &crate::access::Caller, repo: &str) -> bool {
    use crate::access::{Caller, Need, Principal};
    let account = match caller {
        Caller::Account(p) => Some(p.account.clone()),
        Caller::Bearer(c) => reg.meta.account(&c.sub).await.ok().flatten(),
        Caller::Anonymous => None,
    };
    match account {
        Some(a) => reg
            .authorize(
                &Caller::Account(Principal::full(a, None)),
                Need::Repository(repo, Actions::PUSH),
            )
            .await
            .is_ok(),
        None => false,
    }
}

pub(crate) async fn get(
    reg: &Registry,
    caller: &crate::access::Caller,
    name: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Handled {
    let Some(m) = lookup(reg, name, reference).await? else {
        return Err(unknown(reg, name, reference).await);
    };
    // A HEAD tells only the digest: an account that may push here (to
    // sign the image, say) learns it even where the rules refuse the body,
    // whatever scope the token in hand was issued for. Asked only on a
    // refusal, so an ordinary HEAD costs nothing more.
    if let Err(refused) = reg.check_pull_rule(caller, name.as_str(), &m).await {
        if !(head && account_may_push(reg, caller, name.as_str()).await) {
            if let RegistryError::Denied(why) = &refused {
                tracing::info!(
                    log = "pull_refused",
                    repository = %name.as_str(),
                    reference = %reference,
                    digest = %&*m.digest,
                    rule = crate::pull::refusing_rule(why),
                    reason = %why,
                    "pull refused by a pull rule"
                );
            }
            return Err(refused);
        }
    }
    if !accepts(headers, &m.media_type) {
        return Err(RegistryError::ManifestUnknown(format!(
            "manifest {reference} is {}, which the request's Accept header does not list",
            m.media_type
        )));
    }
    let len = m.content.len();
    let mut resp = Response::new(if head { Body::empty() } else { Body::from(m.content) });
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_str(&m.media_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    h.insert("content-length", HeaderValue::from(len));
    h.insert(
        "docker-content-digest",
        HeaderValue::from_str(&m.digest).expect("ascii"),
    );
    h.insert(
        "etag",
        HeaderValue::from_str(&format!("\"{}\"", m.digest)).expect("ascii"),
    );
    Ok(resp)
}

/// Reads at most `MAX_MANIFEST_BYTES`; a larger body is refused without
/// being read to the end.
async fn read_manifest_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, RegistryError> {
    let too_large = |n: String| {
        RegistryError::ManifestTooLarge(format!("manifest is {n} bytes; the limit is {MAX_MANIFEST_BYTES}"))
    };
    if let Some(len) = header_str(headers, "content-length").and_then(|l| l.parse::<u64>().ok()) {
        if len > MAX_MANIFEST_BYTES as u64 {
            return Err(too_large(len.to_string()));
        }
    }
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::ManifestInvalid(format!("reading the manifest failed: {e}")))?;
        if out.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large(format!("more than {MAX_MANIFEST_BYTES}")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Tags one manifest push may set with `?tag=` (each runs the repository's
/// promotion policies).
const MAX_TAGS_PER_PUSH: usize = 100;

/// A manifest whose every layer claims a signature, attestation or SBOM
/// type is exempt from the pull rules (`Manifest::kind`): each such layer
/// must be here already and must not hold an archive a runtime would
/// unpack (Docker picks a layer's decompression by its bytes).
async fn refuse_disguised_layers(reg: &Registry, manifest: &Manifest) -> Result<(), RegistryError> {
    if manifest.kind() != portcullis_oci::ManifestKind::Artifact {
        return Ok(());
    }
    for l in &manifest.layers {
        let path = reg.store.blob_path(&l.digest);
        let head = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            use std::io::Read;
            let mut head = Vec::with_capacity(512);
            std::fs::File::open(path)?.take(512).read_to_end(&mut head)?;
            Ok(head)
        })
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?
        .map_err(|_| {
            RegistryError::ManifestBlobUnknown(format!(
                "{}: a signature, attestation or SBOM layer is pushed before its manifest",
                l.digest
            ))
        })?;
        if portcullis_oci::media_type::looks_like_archive(&head) {
            return Err(RegistryError::ManifestInvalid(format!(
                "layer {} is labelled {} but holds an archive: a runnable layer can't pass for a signature, attestation or SBOM",
                l.digest, l.media_type
            )));
        }
    }
    Ok(())
}

/// A promotion-only repository (namespace setting `promotion_only`) takes
/// signatures, attestations and SBOMs from clients, and images only by
/// promotion (which writes through `meta::promote`, not here): CI's push
/// right on the namespace can't skip the gate.
async fn refuse_unless_promoted(
    reg: &Registry,
    name: &RepositoryName,
    manifest: &Manifest,
) -> Result<(), RegistryError> {
    if manifest.kind() == portcullis_oci::ManifestKind::Artifact {
        return Ok(());
    }
    let Some((ns, rest)) = name.as_str().split_once('/') else {
        return Ok(());
    };
    let patterns = reg.meta.namespace_promotion_only(ns).await?;
    if patterns.is_empty() {
        return Ok(());
    }
    let compiled = portcullis_policy::parse_patterns(&patterns, "")
        .map_err(|e| RegistryError::Internal(format!("namespace {ns} promotion_only: {e}")))?;
    match compiled.iter().find(|p| p.matches(rest)) {
        Some(p) => Err(RegistryError::Denied(format!(
            "{name} is promotion-only (namespace {ns}, promotion_only {:?}): images reach it by promotion; only signatures, attestations and SBOMs are pushed to it",
            p.pattern
        ))),
        None => Ok(()),
    }
}

pub(crate) async fn put(
    reg: &std::sync::Arc<Registry>,
    actor: &Actor,
    name: &RepositoryName,
    reference: &Reference,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Handled {
    let bytes = read_manifest_body(headers, body).await?;
    let manifest = Manifest::parse(&bytes, header_str(headers, "content-type"))?;
    let digest = match reference {
        Reference::Digest(want) => {
            let got = Digest::of(want.algorithm(), &bytes);
            if &got != want {
                return Err(RegistryError::DigestInvalid(format!(
                    "the manifest's digest is {got}, not {want}"
                )));
            }
            got
        }
        Reference::Tag(_) => Digest::of(Algorithm::Sha256, &bytes),
    };
    let extra_tags = query_params(query, "tag");
    if extra_tags.len() > MAX_TAGS_PER_PUSH {
        return Err(RegistryError::TagInvalid(format!(
            "{} tags in one push; at most {MAX_TAGS_PER_PUSH}",
            extra_tags.len()
        )));
    }
    for t in &extra_tags {
        validate_tag(t)?;
    }
    let mut tags: Vec<&str> = extra_tags.iter().map(String::as_str).collect();
    if let Reference::Tag(t) = reference {
        tags.push(t);
    }
    let subject = manifest.subject.as_ref().map(|s| &s.digest);
    let event = actor.event("push");
    commit(reg, actor, name, &manifest, &bytes, &digest, tags, event).await?;
    let mut resp = crate::created(&format!("/v2/{name}/manifests/{digest}"), &digest);
    let h = resp.headers_mut();
    if let Some(s) = subject {
        h.insert("oci-subject", HeaderValue::from_str(s.as_str()).expect("ascii"));
    }
    if !extra_tags.is_empty() {
        h.insert(
            "oci-tag",
            HeaderValue::from_str(&extra_tags.join(", ")).expect("tags are ascii"),
        );
    }
    Ok(resp)
}

/// Stores a parsed manifest as a push does, whoever sends it (a client's
/// push, a replication's import): the promotion-only and disguised-layer
/// checks, the manifest with its tags, `event` (its repository, digest and
/// tags filled in) and the `MANIFEST_PUSH`/`TAG_PUSH` events in one
/// transaction, then what follows every push: the scan on push and, after
/// the answer, the promotion policies of the tags written.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn commit(
    reg: &std::sync::Arc<Registry>,
    actor: &Actor,
    name: &RepositoryName,
    manifest: &Manifest,
    bytes: &[u8],
    digest: &Digest,
    tags: Vec<&str>,
    event: portcullis_meta::AuditEvent,
) -> Result<(), RegistryError> {
    refuse_unless_promoted(reg, name, manifest).await?;
    refuse_disguised_layers(reg, manifest).await?;
    let pushed_tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    let subject = manifest.subject.as_ref().map(|s| &s.digest);
    let mut event = event.repository(name.as_str()).digest(digest.as_str());
    if !tags.is_empty() {
        let listed = format!("tags={}", tags.join(","));
        event.detail = Some(match event.detail.take() {
            Some(d) => format!("{listed} {d}"),
            None => listed,
        });
    }
    // MANIFEST_PUSH, then a TAG_PUSH per tag: written with the push.
    let about = About {
        repository: name.as_str(),
        digest: Some(digest.as_str()),
        tag: None,
        media_type: Some(manifest.media_type.as_str()),
    };
    event.outbox = std::iter::once(reg.event("MANIFEST_PUSH", Some(actor), about, json!({})))
        .chain(tags.iter().map(|t| {
            let about = About { tag: Some(t), ..about };
            reg.event("TAG_PUSH", Some(actor), about, json!({}))
        }))
        .collect();
    reg.manifests.invalidate(name.as_str());
    let stored = reg
        .meta
        .put_manifest(
            NewManifest {
                repo: name.as_str(),
                digest,
                media_type: &manifest.media_type,
                artifact_type: manifest.referrer_artifact_type(),
                subject,
                annotations: manifest.annotations.as_ref().map(|a| a.to_string()),
                content: bytes,
                blobs: manifest.required_blobs(),
                children: manifest.required_manifests(),
                tags,
            },
            &event,
        )
        .await;
    // Again after the commit: a concurrent read may have cached the old tag meanwhile.
    reg.manifests.invalidate(name.as_str());
    stored?;
    reg.dispatcher.wake.notify_one();
    reg.scan_on_push(name.as_str(), manifest, digest).await;
    // An attestation (a `.att` tag, or a referrer) may be what a policy
    // demanding provenance was waiting for.
    let attested = subject.map(|d| d.to_string()).or_else(|| {
        pushed_tags.iter().find_map(|t| {
            let hex = t.strip_prefix("sha256-")?.strip_suffix(".att")?;
            Some(format!("sha256:{hex}"))
        })
    });
    // Policies run after the answer: a push's latency never depends on how
    // many policies its repository has or what they ask.
    if !pushed_tags.is_empty() {
        let (reg, repo, digest) = (reg.clone(), name.to_string(), digest.clone());
        tokio::spawn(async move { reg.promote_pushed(&repo, &pushed_tags, &digest).await });
    }
    if let Some(about) = attested {
        let (reg, repo) = (reg.clone(), name.to_string());
        tokio::spawn(async move { reg.promote_on_attestation(&repo, &about).await });
    }
    Ok(())
}

pub(crate) async fn delete(reg: &Registry, actor: &Actor, name: &RepositoryName, reference: &Reference) -> Handled {
    reg.manifests.invalidate(name.as_str());
    let deleted = match reference {
        Reference::Digest(d) => {
            let mut ev = actor
                .event("manifest.delete")
                .repository(name.as_str())
                .digest(d.as_str());
            let about = About {
                repository: name.as_str(),
                digest: Some(d.as_str()),
                ..About::default()
            };
            let e = reg.event("MANIFEST_DELETE", Some(actor), about, json!({}));
            ev.outbox = vec![e];
            reg.meta.delete_manifest(name.as_str(), d, &ev).await
        }
        Reference::Tag(t) => {
            let mut ev = actor.event("tag.delete").repository(name.as_str()).detail(t.as_str());
            let digest = reg
                .meta
                .get_manifest(name.as_str(), reference)
                .await
                .ok()
                .flatten()
                .map(|m| m.digest);
            let about = About {
                repository: name.as_str(),
                digest: digest.as_deref(),
                tag: Some(t),
                media_type: None,
            };
            let e = reg.event("TAG_DELETE", Some(actor), about, json!({}));
            ev.outbox = vec![e];
            reg.meta.delete_tag(name.as_str(), t, &ev).await
        }
    };
    reg.dispatcher.wake.notify_one();
    reg.manifests.invalidate(name.as_str());
    let deleted = deleted?;
    if !deleted {
        return Err(unknown(reg, name, reference).await);
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use media_type::*;

    #[test]
    fn accept_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], OCI_MANIFEST, true),
            (&["*/*"], OCI_MANIFEST, true),
            (&["application/json"], OCI_MANIFEST, true),
            (&[OCI_MANIFEST], OCI_MANIFEST, true),
            (&["application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json; q=0.9"], OCI_MANIFEST, true),
            (&[DOCKER_MANIFEST, DOCKER_MANIFEST_LIST], OCI_MANIFEST, false),
            (&[DOCKER_MANIFEST], OCI_INDEX, false),
            (&[OCI_MANIFEST, OCI_INDEX], OCI_INDEX, true),
        ];
        for (accept, stored, want) in cases {
            let mut h = HeaderMap::new();
            for a in *accept {
                h.append("accept", HeaderValue::from_str(a).unwrap());
            }
            assert_eq!(accepts(&h, stored), *want, "{accept:?} for {stored}");
        }
    }
}
