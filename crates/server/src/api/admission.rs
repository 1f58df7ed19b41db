//! `POST /api/v1/admission`: a Kubernetes validating admission webhook.
//! For pods and the workloads that hold pod templates, every image is
//! resolved through this registry (tags to digests) and judged by the pull
//! rules of its repository and namespace (signatures, scan results), with
//! no administrator exemption; images of other registries are admitted
//! only when `admission_foreign_images` is `allow`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_auth::Actions;
use portcullis_oci::{media_type, Digest, Reference};
use portcullis_policy::{admission_request, parse_image};
use serde_json::json;

use super::{json_body, reply, ApiResult, Who};
use crate::access::Need;
use crate::cache::CachedManifest;
use crate::Registry;

pub(crate) async fn admission(State(reg): State<Arc<Registry>>, who: Who, body: Bytes) -> ApiResult {
    who.need(&reg, Need::Authenticated).await?;
    let review: serde_json::Value = json_body(&body)?;
    let request = admission_request(&review).map_err(|e| crate::RegistryError::Invalid(e.to_string()))?;
    let mut problems = Vec::new();
    for image in &request.images {
        if let Err(why) = admit(&reg, &who, image).await {
            problems.push(format!("{image}: {why}"));
        }
    }
    let mut response = json!({"uid": request.uid, "allowed": problems.is_empty()});
    if !problems.is_empty() {
        response["status"] = json!({"code": 403, "message": format!("Portcullis: {}", problems.join("; "))});
    }
    Ok(reply(
        StatusCode::OK,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
    ))
}

/// Whether one image may run; `Err` says why not.
async fn admit(reg: &Registry, who: &Who, image: &str) -> Result<(), String> {
    let r = parse_image(image).ok_or("not an image reference")?;
    let ours = reg
        .webhooks
        .public_url
        .split_once("://")
        .map_or("", |(_, h)| h.trim_end_matches('/'));
    if r.host != ours {
        return if reg.access.settings.admission_foreign_images {
            Ok(())
        } else {
            Err(format!("images from {} are not admitted (only {ours})", r.host))
        };
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
    let stored = reg
        .meta
        .get_manifest(&r.repository, &reference)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{reference} is not in {}", r.repository))?;
    // An index runs one of its images: each must pass.
    let mut manifests = vec![stored.clone()];
    if media_type::is_index(&stored.media_type) {
        manifests.clear();
        for child in reg
            .meta
            .children(&r.repository, &stored.digest)
            .await
            .map_err(|e| e.to_string())?
        {
            let d: Digest = child.parse().map_err(|e: portcullis_oci::OciError| e.to_string())?;
            if let Some(m) = reg
                .meta
                .get_manifest(&r.repository, &Reference::Digest(d))
                .await
                .map_err(|e| e.to_string())?
            {
                manifests.push(m);
            }
        }
    }
    for m in manifests {
        let cached = CachedManifest {
            digest: m.digest.into(),
            media_type: m.media_type.into(),
            content: m.content.into(),
        };
        reg.judge_pull(&r.repository, &cached)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
