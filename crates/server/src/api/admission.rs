//! `POST /api/v1/admission`: a Kubernetes validating admission webhook.
//! For pods (and their `ephemeralcontainers` subresource, which `kubectl
//! debug` writes) and the workloads that hold pod templates, every image is
//! resolved through this registry (tags to digests) and judged by the pull
//! rules of its repository and namespace (signatures, scan results), with
//! no administrator exemption; images of other registries are admitted
//! only when `admission_foreign_images` is `allow`.
//!
//! The work per review is bounded: at most [`MAX_IMAGES`] references, each
//! (repository, digest) judged once, and an answer within [`DEADLINE`]
//! (Kubernetes' default webhook timeout is 10 s), a denial if need be.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_auth::Actions;
use portcullis_oci::{Digest, Reference};
use portcullis_policy::{admission_request, parse_image};
use serde_json::json;
use utoipa::ToSchema;

use super::{json_body, reply, ApiResult, Who};
use crate::access::Need;
use crate::cache::CachedManifest;
use crate::Registry;

/// Image references judged in one review; a review naming more is denied.
pub(crate) const MAX_IMAGES: usize = 256;
/// A review still unfinished after this is denied (never left to time out).
pub(crate) const DEADLINE: Duration = Duration::from_secs(8);
/// Reviews judged at once; others wait (within their deadline).
static REVIEWS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// A Kubernetes `AdmissionReview`. It is Kubernetes's and grows fields,
/// so unknown ones are accepted.
#[derive(ToSchema)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct AdmissionReview {
    /// `admission.k8s.io/v1`.
    apiVersion: String,
    /// `AdmissionReview`.
    kind: String,
    /// In a review sent: the object (`uid`, `kind`, `object`, …).
    request: Option<serde_json::Value>,
    /// In the answer: `uid`, `allowed`, and `status` (`code` 403,
    /// `message`) when denied.
    response: Option<serde_json::Value>,
}

#[utoipa::path(
    post,
    path = "/api/v1/admission",
    tag = "admission",
    request_body(content = AdmissionReview, description = "A Kubernetes `AdmissionReview` (admission.k8s.io/v1) of a pod, its `ephemeralcontainers`, or a workload with a pod template"),
    responses((status = 200, description = "The review answered: `response.allowed`, and why not in `response.status.message`", body = AdmissionReview)),
)]
pub(crate) async fn admission(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let review: serde_json::Value = json_body(&body)?;
    let request = admission_request(&review).map_err(|e| crate::RegistryError::Invalid(e.to_string()))?;
    let problems = if request.images.len() > MAX_IMAGES {
        vec![format!(
            "{} images in one object; at most {MAX_IMAGES} are judged",
            request.images.len()
        )]
    } else {
        let judged = async {
            let _permit = REVIEWS.acquire().await.expect("never closed");
            judge_all(&reg, &who, &request.images).await
        };
        match tokio::time::timeout(DEADLINE, judged).await {
            Ok(problems) => problems,
            Err(_) => vec![format!(
                "the images could not be judged within {} s; denied",
                DEADLINE.as_secs()
            )],
        }
    };
    let mut response = json!({"uid": request.uid, "allowed": problems.is_empty()});
    if !problems.is_empty() {
        response["status"] = json!({"code": 403, "message": format!("Portcullis: {}", problems.join("; "))});
    }
    // Every verdict is on the trail: who asked (the cluster's account),
    // about which images, and why a denial denied.
    let mut event = who
        .actor
        .event("admission")
        .detail(admission_detail(&request, &problems));
    if !problems.is_empty() {
        event.result = "denied".into();
    }
    reg.meta.audit(&[event]).await?;
    Ok(reply(
        StatusCode::OK,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    ))
}

/// The audit record's detail: the object's kind, its images and what was
/// wrong, at most [`MAX_DETAIL`] characters.
fn admission_detail(request: &portcullis_policy::AdmissionRequest, problems: &[String]) -> String {
    let mut detail = format!("{} {}", request.kind, request.images.join(","));
    if !problems.is_empty() {
        detail.push_str(": ");
        detail.push_str(&problems.join("; "));
    }
    if detail.chars().count() > MAX_DETAIL {
        detail = detail.chars().take(MAX_DETAIL).chain(['…']).collect();
    }
    detail
}

/// The longest detail an admission record keeps (a review may name 256 images).
const MAX_DETAIL: usize = 2048;

/// Why each failing image may not run; each (repository, digest) is
/// judged once however many references resolve to it.
async fn judge_all(reg: &Registry, who: &Who, images: &[String]) -> Vec<String> {
    let mut verdicts: HashMap<(String, String), Result<(), String>> = HashMap::new();
    let mut problems = Vec::new();
    for image in images {
        let verdict = match resolve(reg, who, image).await {
            Ok(None) => Ok(()),
            Ok(Some((repo, m))) => {
                let key = (repo.clone(), m.digest.to_string());
                match verdicts.get(&key) {
                    Some(v) => v.clone(),
                    None => {
                        let v = reg.judge_pull(&repo, &m).await.map_err(|e| e.to_string());
                        verdicts.insert(key, v.clone());
                        v
                    }
                }
            }
            Err(why) => Err(why),
        };
        if let Err(why) = verdict {
            problems.push(format!("{image}: {why}"));
        }
    }
    problems
}

/// The repository and manifest `image` names here; `None` for a foreign
/// image that may run; `Err` says why not.
async fn resolve(reg: &Registry, who: &Who, image: &str) -> Result<Option<(String, CachedManifest)>, String> {
    let r = parse_image(image).ok_or("not an image reference")?;
    let foreign_allowed = reg.access.settings.admission_foreign_images;
    // Resolving a name only matters when foreign images are allowed (it
    // keeps this registry's images from passing as foreign); otherwise
    // anything but its own names is refused without a DNS query.
    match whose(reg, &r.host, foreign_allowed).await {
        Host::Ours => {}
        Host::Foreign if foreign_allowed => return Ok(None),
        Host::Foreign => {
            return Err(format!(
                "images from {} are not admitted (only {})",
                r.host,
                our_host(reg)
            ));
        }
        // The node resolves the name again when it pulls: judged, so it
        // can't pass as foreign, and admitted only if what is here passes.
        Host::ResolvesHere => {}
    }
    if let Err(e) = who.need(reg, Need::Repository(&r.repository, Actions::PULL)).await {
        return Err(format!(
            "{} is not readable by this webhook's account ({e})",
            r.repository
        ));
    }
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => Reference::Digest(d.parse::<Digest>().map_err(|e| e.to_string())?),
        (None, Some(t)) => Reference::Tag(t.clone()),
        (None, None) => return Err("no tag or digest".into()),
    };
    let m = reg
        .meta
        .get_manifest(&r.repository, &reference)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{reference} is not in {}", r.repository))?;
    Ok(Some((
        r.repository,
        CachedManifest {
            digest: m.digest.into(),
            media_type: m.media_type.into(),
            content: m.content.into(),
        },
    )))
}

fn our_host(reg: &Registry) -> &str {
    reg.webhooks
        .public_url
        .split_once("://")
        .map_or("", |(_, h)| h.trim_end_matches('/'))
}

/// `host[:port]` as a runtime would reach it: lower case, no trailing dot
/// on the name, no `:443` (a registry's default port).
pub(crate) fn normal_host(host: &str) -> (String, Option<u16>) {
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:5000`, `name:5000`; a bare IPv6 address has more colons.
        Some((n, p)) if !n.is_empty() && (n.ends_with(']') || !n.contains(':')) => (n.to_string(), p.parse().ok()),
        _ => (host.clone(), None),
    };
    let name = name.trim_end_matches('.').to_string();
    let port = port.filter(|p| *p != 443);
    (name, port)
}

fn joined((name, port): &(String, Option<u16>)) -> String {
    match port {
        Some(p) => format!("{name}:{p}"),
        None => name.clone(),
    }
}

/// What a reference's host is to this registry.
enum Host {
    /// The public URL's host or one of `registry_aliases`.
    Ours,
    /// Another name or address that reaches the address `serve` listens on
    /// (looked up only when foreign images are allowed).
    ResolvesHere,
    Foreign,
}

/// Whose `host` is. With `resolve`, a reference on the listen port is
/// looked up (foreign images on other ports cost no DNS query).
async fn whose(reg: &Registry, host: &str, resolve: bool) -> Host {
    let wanted = normal_host(host);
    let settings = &reg.access.settings;
    let ours = std::iter::once(our_host(reg)).chain(settings.registry_aliases.iter().map(String::as_str));
    if ours.map(normal_host).any(|o| joined(&o) == joined(&wanted)) {
        return Host::Ours;
    }
    match settings.listen {
        Some(listen) if resolve && resolves_to(&wanted, listen).await => Host::ResolvesHere,
        _ => Host::Foreign,
    }
}

/// Whether `host[:port]` resolves to `listen`.
async fn resolves_to(wanted: &(String, Option<u16>), listen: SocketAddr) -> bool {
    let port = wanted.1.unwrap_or(443);
    if port != listen.port() {
        return false;
    }
    let name = wanted.0.trim_start_matches('[').trim_end_matches(']').to_string();
    let addrs: Vec<SocketAddr> = match name.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            match tokio::time::timeout(Duration::from_secs(1), tokio::net::lookup_host((name.as_str(), port))).await {
                Ok(Ok(addrs)) => addrs.collect(),
                _ => return false,
            }
        }
    };
    addrs.iter().any(|a| reaches(a.ip(), listen.ip()))
}

/// Whether a connection to `ip` reaches a socket bound to `listen`.
fn reaches(ip: IpAddr, listen: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip == listen {
        return true;
    }
    // Bound to every address: any address of this host reaches it. Binding
    // a UDP socket to it (port 0) tells whether it is one, sending nothing.
    listen.is_unspecified() && (ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_as_runtimes_reach_them() {
        let table = [
            ("localhost:5000", "localhost:5000"),
            ("LOCALHOST:5000", "localhost:5000"),
            ("localhost.:5000", "localhost:5000"),
            ("Registry.Example.com.", "registry.example.com"),
            ("registry.example.com:443", "registry.example.com"),
            ("registry.example.com:5443", "registry.example.com:5443"),
            ("[::1]:5000", "[::1]:5000"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ];
        for (given, want) in table {
            assert_eq!(joined(&normal_host(given)), want, "{given}");
        }
    }

    #[test]
    fn an_address_reaches_the_listen_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let table = [
            ("127.0.0.1", "127.0.0.1", true),
            ("::ffff:127.0.0.1", "127.0.0.1", true),
            ("127.0.0.2", "127.0.0.1", false),
            ("127.0.0.1", "0.0.0.0", true),
            ("::1", "::", true),
            ("192.0.2.1", "0.0.0.0", false),
            ("192.0.2.1", "127.0.0.1", false),
        ];
        for (addr, listen, want) in table {
            assert_eq!(reaches(ip(addr), ip(listen)), want, "{addr} → {listen}");
        }
    }
}
