//! The HTTP client of the management API: which server, which credential,
//! and how an answer becomes output or an exit code.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::credentials::{self, Secret};
use super::{Format, Remote};

/// The server refused (HTTP 401, 403, 404, 409, 422, 429) or a dry run did
/// not pass: exit code 1.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether an HTTP status is a refusal (exit 1) rather than an error (exit 2).
pub fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 404 | 409 | 422 | 429)
}

pub struct Client {
    pub http: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    pub base: String,
    /// `host[:port]`: the key of the server's entry in the auth file.
    pub host: String,
    pub secret: Option<Secret>,
    pub format: Format,
}

/// `URL` as given (`https://h:5000`, `h:5000`, `http://h`): the base URL and
/// the auth file key. Without a scheme: `https`, or `http` when `plain`.
pub fn parse_server(given: &str, plain: bool) -> anyhow::Result<(String, String)> {
    let given = given.trim().trim_end_matches('/');
    let with_scheme = if given.contains("://") {
        given.to_string()
    } else if plain {
        format!("http://{given}")
    } else {
        format!("https://{given}")
    };
    let url = reqwest::Url::parse(&with_scheme).with_context(|| format!("{given:?} is not a server URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("{given:?}: the server URL is http:// or https://");
    }
    if url.path() != "/" && !url.path().is_empty() {
        bail!("{given:?}: give the server's address without a path, such as https://registry.example:5000");
    }
    let host = url.host_str().ok_or_else(|| anyhow!("{given:?} names no host"))?;
    let key = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Ok((format!("{}://{key}", url.scheme()), key))
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("portcullis-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(300))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

impl Client {
    /// The server named by `--server`, PORTCULLIS_SERVER or the last login,
    /// with the credential the auth file holds for it (if any).
    pub fn for_remote(remote: &Remote) -> anyhow::Result<Client> {
        let given = remote
            .server
            .clone()
            .or_else(|| std::env::var("PORTCULLIS_SERVER").ok().filter(|s| !s.is_empty()));
        let (base, host) = match given {
            Some(s) => {
                // A bare host:port takes the scheme its login used.
                let remembered = credentials::remembered_url(&s);
                match remembered {
                    Some(url) => parse_server(&url, false)?,
                    None => parse_server(&s, false)?,
                }
            }
            None => {
                let url = credentials::current_server()?.ok_or_else(|| {
                    anyhow!(
                        "which server? give --server URL, set PORTCULLIS_SERVER, or run `portcullis login URL` first"
                    )
                })?;
                parse_server(&url, false)?
            }
        };
        let secret = credentials::lookup(&host)?;
        Ok(Client {
            http: http_client()?,
            base,
            host,
            secret,
            format: remote.format,
        })
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Sends a request to `path` (under the base URL) with the stored
    /// credential; the answer's JSON (null when empty). A refusal is
    /// [`Refused`], anything else that went wrong an error; in json format
    /// the server's error body is printed on standard output too.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        req = match &self.secret {
            Some(s) => s.authorize(req),
            None => req,
        };
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| unreachable(&self.base, e, false))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| unreachable(&self.base, e, false))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return Ok(parsed.unwrap_or(Value::Null));
        }
        if self.json() {
            if let Some(v) = &parsed {
                println!("{}", serde_json::to_string_pretty(v)?);
            }
        }
        let message = server_message(parsed.as_ref(), &text);
        let shown = path.replace("%2F", "/");
        let mut msg = format!("{method} {shown}: HTTP {}: {message}", status.as_u16());
        if status == StatusCode::UNAUTHORIZED {
            msg.push_str(&match &self.secret {
                None => format!(
                    " (not logged in to {}: run `portcullis login {}`)",
                    self.host, self.base
                ),
                Some(_) => format!(
                    " (the credential stored for {} was refused: run `portcullis login {}` again)",
                    self.host, self.base
                ),
            });
        }
        if is_refusal(status) {
            Err(Refused(msg).into())
        } else {
            Err(anyhow!(msg))
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call(Method::PUT, path, body).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// Prints `v` as JSON (json format) or as `text` renders it.
    pub fn print(&self, v: &Value, text: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
        if self.json() {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            let t = text(v);
            if !t.is_empty() {
                println!("{}", t.trim_end_matches('\n'));
            }
        }
        Ok(())
    }
}

/// The message of a registry error body (`{"errors": [{"code", "message"}]}`),
/// or the body itself.
pub fn server_message(parsed: Option<&Value>, text: &str) -> String {
    let errors = parsed.and_then(|v| v["errors"].as_array());
    match errors {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|e| {
                let code = e["code"].as_str().unwrap_or("");
                let message = e["message"].as_str().unwrap_or("");
                match (code.is_empty(), message.is_empty()) {
                    (false, false) => format!("{code}: {message}"),
                    (false, true) => code.to_string(),
                    _ => message.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ if text.trim().is_empty() => "(no message)".into(),
        _ => text.trim().chars().take(500).collect(),
    }
}

/// A request that got no answer: every cause, and what to do about a
/// server that does not speak TLS (`login`: --tls-verify=false; other
/// commands: its http:// URL).
pub fn unreachable(base: &str, e: reqwest::Error, login: bool) -> anyhow::Error {
    let mut text = portcullis_registry_client::explain(e);
    if !login {
        text = text.replace("pass --tls-verify=false", "give its URL as http://…");
    }
    anyhow!("cannot reach {base}: {text}")
}

/// One path segment, percent-encoded (a repository name's `/` too, which
/// the API reads back as part of the name).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON value as text for a table cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let table = [
            (
                "https://r.example:5000",
                false,
                Some(("https://r.example:5000", "r.example:5000")),
            ),
            (
                "https://r.example:5000/",
                false,
                Some(("https://r.example:5000", "r.example:5000")),
            ),
            (
                "r.example:5000",
                false,
                Some(("https://r.example:5000", "r.example:5000")),
            ),
            (
                "r.example:5000",
                true,
                Some(("http://r.example:5000", "r.example:5000")),
            ),
            (
                "http://127.0.0.1:5000",
                false,
                Some(("http://127.0.0.1:5000", "127.0.0.1:5000")),
            ),
            ("https://r.example", false, Some(("https://r.example", "r.example"))),
            // The default port is not part of the name (as skopeo keys it).
            ("https://r.example:443", false, Some(("https://r.example", "r.example"))),
            ("http://[::1]:5000", false, Some(("http://[::1]:5000", "[::1]:5000"))),
            ("https://r.example/acme", false, None),
            ("ftp://r.example", false, None),
            ("", false, None),
        ];
        for (given, plain, want) in table {
            let got = parse_server(given, plain).ok();
            let want = want.map(|(b, h)| (b.to_string(), h.to_string()));
            assert_eq!(got, want, "{given:?} plain={plain}");
        }
    }

    #[test]
    fn refusals_and_errors() {
        for code in [401, 403, 404, 409, 422, 429] {
            assert!(is_refusal(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 405, 413, 500, 502, 503] {
            assert!(!is_refusal(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn server_messages() {
        let body = serde_json::json!({"errors": [{"code": "DENIED", "message": "you may not", "detail": null}]});
        assert_eq!(server_message(Some(&body), ""), "DENIED: you may not");
        assert_eq!(server_message(None, "  bad gateway \n"), "bad gateway");
        assert_eq!(server_message(None, ""), "(no message)");
    }

    #[test]
    fn path_segments() {
        assert_eq!(seg("acme/app"), "acme%2Fapp");
        assert_eq!(seg("acme+ci"), "acme+ci");
        assert_eq!(seg("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(seg("sha256:ab"), "sha256:ab");
    }
}
