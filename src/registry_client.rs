//! Just enough of a Distribution client for `portcullis scan docker://…`:
//! the Docker token flow (or Basic), manifests with platform selection,
//! and layers streamed into the scanner while their digest is checked.

use std::io::{self, Read};

use anyhow::{anyhow, bail, Context};
use futures_util::TryStreamExt;
use portcullis_oci::{media_type, Digest, Manifest, Platform, MAX_MANIFEST_BYTES};
use portcullis_scan::layer::LayerError;
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::target::{io_other, looks_like_index, pick_platform, Access};

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    repository: String,
    creds: Option<(String, String)>,
    auth: Mutex<Option<String>>,
}

/// `Bearer realm="…",service="…",scope="repository:a:pull,push"`: values
/// are quoted and may hold commas, so split with the quotes in mind.
fn challenge_params(header: &str) -> (String, Vec<(String, String)>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    (scheme.to_ascii_lowercase(), params)
}

impl RegistryClient {
    pub fn new(host: &str, repository: &str, access: &Access) -> anyhow::Result<RegistryClient> {
        let creds = access
            .creds
            .as_deref()
            .map(|c| {
                c.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .ok_or_else(|| anyhow!("--creds must be USER:PASSWORD"))
            })
            .transpose()?;
        let scheme = if access.tls_verify { "https" } else { "http" };
        Ok(RegistryClient {
            http: reqwest::Client::builder()
                .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: format!("{scheme}://{host}"),
            repository: repository.to_string(),
            creds,
            auth: Mutex::new(None),
        })
    }

    async fn get(&self, path: &str, accept: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        for attempt in 0..2 {
            let mut req = self.http.get(&url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(auth) = self.auth.lock().await.clone() {
                req = req.header(reqwest::header::AUTHORIZATION, auth);
            }
            let resp = req.send().await.with_context(|| format!("GET {url}"))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let auth = self.authorize(&challenge).await?;
                *self.auth.lock().await = Some(auth);
                continue;
            }
            if resp.status() == StatusCode::UNAUTHORIZED {
                match self.creds {
                    None => bail!("GET {url}: the registry wants credentials: pass --creds USER:PASSWORD"),
                    Some(_) => bail!("GET {url}: the registry refused the credentials"),
                }
            }
            if !resp.status().is_success() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                bail!("GET {url}: {status}: {}", body.chars().take(300).collect::<String>());
            }
            return Ok(resp);
        }
        bail!("GET {url}: the registry refused the credentials")
    }

    /// The Authorization header value a challenge asks for.
    async fn authorize(&self, challenge: &str) -> anyhow::Result<String> {
        use base64::Engine;
        let (scheme, params) = challenge_params(challenge);
        let basic = self.creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        match scheme.as_str() {
            "basic" => basic.ok_or_else(|| anyhow!("the registry wants credentials: pass --creds USER:PASSWORD")),
            "bearer" => {
                let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                let realm = get("realm").ok_or_else(|| anyhow!("bearer challenge without a realm"))?;
                let scope = format!("repository:{}:pull", self.repository);
                let mut query = vec![("scope", scope.as_str())];
                if let Some(service) = get("service") {
                    query.push(("service", service));
                }
                let mut req = self.http.get(realm).query(&query);
                if let Some(b) = basic {
                    req = req.header(reqwest::header::AUTHORIZATION, b);
                }
                let resp = req.send().await.with_context(|| format!("token request to {realm}"))?;
                let status = resp.status();
                if !status.is_success() {
                    bail!("the token endpoint {realm} refused: {status}");
                }
                let body: serde_json::Value = resp.json().await.context("token response")?;
                let token = body["token"]
                    .as_str()
                    .or(body["access_token"].as_str())
                    .ok_or_else(|| anyhow!("token response without a token"))?;
                Ok(format!("Bearer {token}"))
            }
            _ => bail!("the registry answered 401 without a usable challenge ({challenge:?})"),
        }
    }

    async fn manifest_bytes(&self, reference: &str) -> anyhow::Result<(Vec<u8>, Option<String>, Digest)> {
        let accept = [
            media_type::OCI_MANIFEST,
            media_type::OCI_INDEX,
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let mut resp = self.get(&format!("manifests/{reference}"), Some(&accept)).await?;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_MANIFEST_BYTES {
                bail!("the manifest {reference} is over {MAX_MANIFEST_BYTES} bytes");
            }
        }
        let digest = Digest::sha256_of(&bytes);
        if let Ok(wanted) = reference.parse::<Digest>() {
            let actual = Digest::of(wanted.algorithm(), &bytes);
            anyhow::ensure!(actual == wanted, "manifest {reference} arrived with digest {actual}");
            return Ok((bytes, content_type, wanted));
        }
        Ok((bytes, content_type, digest))
    }

    /// The image manifest for `reference`, through an index if need be.
    pub async fn image_manifest(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> anyhow::Result<(String, Manifest, Option<String>)> {
        let (mut bytes, mut content_type, mut digest) = self.manifest_bytes(reference).await?;
        let mut chosen = None;
        if content_type.as_deref().is_some_and(media_type::is_index) || looks_like_index(&bytes) {
            let (d, p) = pick_platform(&bytes, platform)?;
            (bytes, content_type, digest) = self.manifest_bytes(d.as_str()).await?;
            chosen = Some(p);
        }
        let manifest = Manifest::parse(&bytes, content_type.as_deref()).context("the image manifest")?;
        Ok((digest.to_string(), manifest, chosen))
    }

    /// Streams a layer blob through `parse`, checking it against its digest.
    pub async fn read_layer<T: Send + 'static>(
        &self,
        digest: &str,
        parse: impl FnOnce(&mut dyn Read) -> Result<T, LayerError> + Send + 'static,
    ) -> anyhow::Result<T> {
        let wanted: Digest = digest.parse()?;
        let resp = self.get(&format!("blobs/{digest}"), None).await?;
        let stream = resp.bytes_stream().map_err(io_other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || {
            let mut hashing = Hashing {
                inner: reader,
                hasher: wanted.algorithm().hasher(),
            };
            let parsed = parse(&mut hashing).with_context(|| format!("layer {digest}"))?;
            // The tar may end before the blob does (padding): hash it all.
            io::copy(&mut hashing, &mut io::sink())?;
            let actual = hashing.hasher.finish();
            anyhow::ensure!(actual == wanted, "layer {digest} arrived with digest {actual}");
            Ok(parsed)
        })
        .await?
    }
}

struct Hashing<R> {
    inner: R,
    hasher: portcullis_oci::DigestHasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::challenge_params;

    #[test]
    fn challenges_with_quoted_commas() {
        let (scheme, params) = challenge_params(
            r#"Bearer realm="https://r.example/auth/token",service="portcullis",scope="repository:acme/app:pull,push""#,
        );
        assert_eq!(scheme, "bearer");
        let got: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("realm", "https://r.example/auth/token"),
                ("service", "portcullis"),
                ("scope", "repository:acme/app:pull,push")
            ]
        );
        let (scheme, params) = challenge_params(r#"Basic realm="Registry""#);
        assert_eq!((scheme.as_str(), params[0].1.as_str()), ("basic", "Registry"));
    }
}
