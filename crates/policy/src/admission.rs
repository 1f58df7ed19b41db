//! Kubernetes admission (`AdmissionReview` v1): which container images a
//! pod or workload object runs, and image references as Kubernetes writes
//! them. Pure: the server resolves and judges the images.

use serde_json::Value;

use crate::PolicyError;

/// Kinds whose pod spec is known, and where it is.
const POD_SPEC_PATHS: [(&str, &[&str]); 8] = [
    ("Pod", &["spec"]),
    // Kubernetes before 1.22 sent `kubectl debug`'s subresource as its own kind.
    ("EphemeralContainers", &[]),
    ("Deployment", &["spec", "template", "spec"]),
    ("ReplicaSet", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
    ("Job", &["spec", "template", "spec"]),
    ("CronJob", &["spec", "jobTemplate", "spec", "template", "spec"]),
];

/// What an admission request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: String,
    /// Every image of every container, init container and ephemeral
    /// container, in order, without repeats; empty for other kinds.
    pub images: Vec<String>,
}

/// Reads an `AdmissionReview` v1 as the API server sends it.
pub fn admission_request(review: &Value) -> Result<AdmissionRequest, PolicyError> {
    let bad = |why: &str| PolicyError::BadPolicy(format!("not an AdmissionReview v1 request: {why}"));
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(bad("apiVersion admission.k8s.io/v1 and kind AdmissionReview expected"));
    }
    let request = &review["request"];
    let uid = request["uid"]
        .as_str()
        .ok_or_else(|| bad("request.uid is missing"))?
        .to_string();
    let kind = request["kind"]["kind"].as_str().unwrap_or_default().to_string();
    let mut images = Vec::new();
    if let Some((_, path)) = POD_SPEC_PATHS.iter().find(|(k, _)| *k == kind) {
        let spec = path.iter().fold(&request["object"], |v, key| &v[*key]);
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                if let Some(image) = c["image"].as_str() {
                    if !images.iter().any(|i| i == image) {
                        images.push(image.to_string());
                    }
                }
            }
        }
    }
    Ok(AdmissionRequest { uid, kind, images })
}

/// An image reference: registry host, repository, tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub host: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parses `host[:port]/repo[:tag][@digest]` as container runtimes do: the
/// first component is a host if it has a `.` or `:`, is `localhost`, or
/// has an upper-case letter (repository names can't); otherwise the image
/// is on Docker Hub.
pub fn parse_image(image: &str) -> Option<ImageRef> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    let (host, path) = match rest.split_once('/') {
        Some((first, path))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), path.to_string())
        }
        _ => ("docker.io".to_string(), rest.to_string()),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
        _ => (path, None),
    };
    if repository.is_empty() {
        return None;
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".to_string())
    } else {
        tag
    };
    Some(ImageRef {
        host,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_reference_table() {
        let r = |h: &str, repo: &str, t: Option<&str>, d: Option<&str>| ImageRef {
            host: h.into(),
            repository: repo.into(),
            tag: t.map(str::to_string),
            digest: d.map(str::to_string),
        };
        let table = [
            (
                "registry.example:5000/acme/app:1",
                Some(r("registry.example:5000", "acme/app", Some("1"), None)),
            ),
            (
                "registry.example/acme/app",
                Some(r("registry.example", "acme/app", Some("latest"), None)),
            ),
            (
                "127.0.0.1:5000/acme/app@sha256:ab",
                Some(r("127.0.0.1:5000", "acme/app", None, Some("sha256:ab"))),
            ),
            (
                "localhost/x:2@sha256:cd",
                Some(r("localhost", "x", Some("2"), Some("sha256:cd"))),
            ),
            ("nginx:1.25", Some(r("docker.io", "nginx", Some("1.25"), None))),
            (
                "LOCALHOST/acme/app",
                Some(r("LOCALHOST", "acme/app", Some("latest"), None)),
            ),
            ("Registry/app:1", Some(r("Registry", "app", Some("1"), None))),
            (
                "library/nginx",
                Some(r("docker.io", "library/nginx", Some("latest"), None)),
            ),
            ("registry.example/", None),
        ];
        for (image, want) in table {
            assert_eq!(parse_image(image), want, "{image}");
        }
    }

    #[test]
    fn images_of_each_workload_kind() {
        let pod_spec = json!({"initContainers": [{"image": "r.example/acme/init:1"}],
                              "containers": [{"image": "r.example/acme/app:1"}, {"image": "r.example/acme/app:1"}],
                              "ephemeralContainers": [{"image": "busybox"}]});
        let want = ["r.example/acme/init:1", "r.example/acme/app:1", "busybox"];
        let wrap = |kind: &str, object: Value| {
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": kind}, "object": object}})
        };
        let template = json!({"template": {"spec": pod_spec}});
        let cases = [
            ("Pod", json!({"spec": pod_spec})),
            ("Deployment", json!({"spec": template})),
            ("ReplicaSet", json!({"spec": template})),
            ("StatefulSet", json!({"spec": template})),
            ("DaemonSet", json!({"spec": template})),
            ("Job", json!({"spec": template})),
            ("CronJob", json!({"spec": {"jobTemplate": {"spec": template}}})),
        ];
        for (kind, object) in cases {
            let r = admission_request(&wrap(kind, object)).unwrap();
            assert_eq!(r.uid, "u-1");
            assert_eq!(r.images, want, "{kind}");
        }
        assert!(admission_request(&wrap("ConfigMap", json!({"data": {}})))
            .unwrap()
            .images
            .is_empty());
        assert!(admission_request(&json!({"kind": "Pod"})).is_err());
    }
}
