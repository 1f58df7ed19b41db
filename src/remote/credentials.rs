//! Credentials as `skopeo login` keeps them: the containers auth file
//! (containers-auth.json(5)), `{"auths": {"HOST[:PORT]": {"auth":
//! base64("USER:SECRET")}}}`, mode 0600, other entries and keys kept as
//! they are. Written to `REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`, else
//! `~/.config/containers/auth.json`; read from the same file and, when
//! `REGISTRY_AUTH_FILE` is not set, from the other files skopeo reads
//! (`/run/containers/$UID/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`,
//! `~/.config/containers/auth.json`, `~/.docker/config.json`).
//!
//! The auth file has no room for a URL scheme, so the CLI keeps its own
//! small state next to it, `$XDG_CONFIG_HOME/portcullis/cli.json` (default
//! `~/.config/portcullis/cli.json`): the server of the last login (the
//! default server of every command) and, per host, its URL and the id of
//! the token `login` made (which `logout` revokes).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use serde_json::{json, Value};

/// A user and their password or API token (`pct_…`).
#[derive(Clone)]
pub struct Secret {
    pub user: String,
    pub secret: String,
}

impl Secret {
    /// API tokens go as `Bearer` (as the API documents for machines),
    /// passwords as Basic.
    pub fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.is_token() {
            req.bearer_auth(&self.secret)
        } else {
            req.basic_auth(&self.user, Some(&self.secret))
        }
    }

    pub fn is_token(&self) -> bool {
        token_id(&self.secret).is_some()
    }
}

/// The id of an API token `pct_<id>_<secret>`.
pub fn token_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix("pct_")?;
    let (id, tail) = rest.split_once('_')?;
    (!id.is_empty() && !tail.is_empty()).then_some(id)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> anyhow::Result<PathBuf> {
    env_path("HOME").ok_or_else(|| anyhow!("HOME is not set: set REGISTRY_AUTH_FILE to name the auth file"))
}

/// The auth file `login` writes and `logout` edits.
pub fn auth_file() -> anyhow::Result<PathBuf> {
    if let Some(p) = env_path("REGISTRY_AUTH_FILE") {
        return Ok(p);
    }
    if let Some(run) = env_path("XDG_RUNTIME_DIR") {
        return Ok(run.join("containers/auth.json"));
    }
    Ok(home()?.join(".config/containers/auth.json"))
}

/// The files a credential is looked up in, in order: the one `login`
/// writes, then where containers-auth.json(5) has skopeo look (without
/// `XDG_RUNTIME_DIR`, `skopeo login` writes `/run/containers/$UID/auth.json`).
fn read_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![auth_file()?];
    if env_path("REGISTRY_AUTH_FILE").is_none() {
        let mut more = Vec::new();
        if env_path("XDG_RUNTIME_DIR").is_none() {
            use std::os::unix::fs::MetadataExt;
            if let Ok(me) = std::fs::metadata("/proc/self") {
                more.push(PathBuf::from(format!("/run/containers/{}/auth.json", me.uid())));
            }
        }
        if let Some(config) = env_path("XDG_CONFIG_HOME") {
            more.push(config.join("containers/auth.json"));
        }
        if let Ok(h) = home() {
            more.push(h.join(".config/containers/auth.json"));
            more.push(h.join(".docker/config.json"));
        }
        for f in more {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    Ok(files)
}

fn read_json(path: &Path) -> anyhow::Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Some(json!({}))),
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))?;
            if !v.is_object() {
                bail!("{} is not a JSON object", path.display());
            }
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// An auth file key without a scheme or path (`https://h:5000/v1/` is `h:5000`).
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

/// `USER:SECRET` kept for `host`, for commands whose `--creds` was not
/// given. No auth file location at all (no HOME, no XDG_RUNTIME_DIR, no
/// REGISTRY_AUTH_FILE) means no login kept; an unreadable file is an error.
pub fn kept_creds(host: &str) -> anyhow::Result<Option<String>> {
    if auth_file().is_err() {
        return Ok(None);
    }
    Ok(lookup(host)?.map(|s| format!("{}:{}", s.user, s.secret)))
}

/// The credential kept for `host` (`HOST[:PORT]`), if any.
pub fn lookup(host: &str) -> anyhow::Result<Option<Secret>> {
    for file in read_files()? {
        let Some(v) = read_json(&file)? else { continue };
        let Some(auths) = v["auths"].as_object() else { continue };
        let entry = auths
            .get(host)
            .or_else(|| auths.iter().find(|(k, _)| normalize_key(k) == host).map(|(_, e)| e));
        let Some(encoded) = entry.and_then(|e| e["auth"].as_str()).filter(|a| !a.is_empty()) else {
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .with_context(|| format!("the entry for {host} in {} is not base64", file.display()))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| anyhow!("the entry for {host} in {} is not UTF-8", file.display()))?;
        let (user, secret) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("the entry for {host} in {} is not USER:PASSWORD", file.display()))?;
        return Ok(Some(Secret {
            user: user.to_string(),
            secret: secret.to_string(),
        }));
    }
    Ok(None)
}

/// Writes `v` to `path` through a temporary file (mode 0600) renamed into
/// place; the directory is made (0700) when missing.
fn write_private(path: &Path, v: &Value) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("auth.json");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(v).expect("json").as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("writing {}: {e}", path.display())
    })
}

/// Keeps `USER:SECRET` for `host` in the auth file; other entries stay.
pub fn store(host: &str, user: &str, secret: &str) -> anyhow::Result<PathBuf> {
    let path = auth_file()?;
    let mut v = read_json(&path)?.unwrap_or_else(|| json!({}));
    if !v["auths"].is_object() {
        v["auths"] = json!({});
    }
    let auths = v["auths"].as_object_mut().expect("object");
    // An older entry under another spelling of the host would shadow nothing
    // but confuse people: one entry per host.
    auths.retain(|k, _| k == host || normalize_key(k) != host);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    auths.insert(host.to_string(), json!({"auth": encoded}));
    write_private(&path, &v)?;
    Ok(path)
}

/// Removes `host`'s entry from the auth file; whether there was one.
pub fn remove(host: &str) -> anyhow::Result<bool> {
    let path = auth_file()?;
    let Some(mut v) = read_json(&path)? else {
        return Ok(false);
    };
    let Some(auths) = v["auths"].as_object_mut() else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != host);
    if auths.len() == before {
        return Ok(false);
    }
    write_private(&path, &v)?;
    Ok(true)
}

// ---- the CLI's own state: default server, URLs, tokens made by login ----

fn state_file() -> anyhow::Result<PathBuf> {
    let config = match env_path("XDG_CONFIG_HOME") {
        Some(c) => c,
        None => home()?.join(".config"),
    };
    Ok(config.join("portcullis/cli.json"))
}

fn read_state() -> anyhow::Result<Value> {
    Ok(read_json(&state_file()?)?.unwrap_or_else(|| json!({})))
}

/// The URL of the last login, the default server.
pub fn current_server() -> anyhow::Result<Option<String>> {
    Ok(read_state()?["current"].as_str().map(String::from))
}

/// The URL a login to `given` (`HOST[:PORT]`, no scheme) used, so a bare
/// `--server h:5000` keeps its login's scheme.
pub fn remembered_url(given: &str) -> Option<String> {
    if given.contains("://") {
        return None;
    }
    let state = read_state().ok()?;
    state["servers"][given.trim_end_matches('/')]["url"]
        .as_str()
        .map(String::from)
}

/// The token `login` made for `host`, to revoke at `logout`.
pub fn login_token(host: &str) -> Option<String> {
    read_state().ok()?["servers"][host]["token_id"]
        .as_str()
        .map(String::from)
}

/// Records a login: the server becomes the default.
pub fn remember(host: &str, url: &str, token_id: Option<&str>) -> anyhow::Result<()> {
    let mut state = read_state()?;
    if !state["servers"].is_object() {
        state["servers"] = json!({});
    }
    state["servers"][host] = json!({"url": url, "token_id": token_id});
    state["current"] = json!(url);
    write_private(&state_file()?, &state)
}

/// Forgets a server; it stops being the default.
pub fn forget(host: &str) -> anyhow::Result<()> {
    let mut state = read_state()?;
    let url = state["servers"][host]["url"].as_str().map(String::from);
    if let Some(servers) = state["servers"].as_object_mut() {
        servers.remove(host);
    }
    let current = state["current"].as_str().map(String::from);
    if current.is_some() && (current == url || current.as_deref().map(normalize_key) == Some(host)) {
        state.as_object_mut().expect("object").remove("current");
    }
    write_private(&state_file()?, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids() {
        assert_eq!(token_id("pct_0123456789abcdef_secret"), Some("0123456789abcdef"));
        assert_eq!(token_id("pct_0123_"), None);
        assert_eq!(token_id("a-password"), None);
        assert_eq!(token_id("pct__x"), None);
    }

    #[test]
    fn auth_keys() {
        assert_eq!(normalize_key("r.example:5000"), "r.example:5000");
        assert_eq!(normalize_key("https://r.example:5000/v1/"), "r.example:5000");
        assert_eq!(normalize_key("http://r.example"), "r.example");
        assert_eq!(normalize_key("r.example/acme"), "r.example");
    }

    #[test]
    fn private_files_keep_their_mode_and_neighbours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/containers/auth.json");
        write_private(&path, &json!({"auths": {"a": {"auth": "x"}}})).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(read_json(&path).unwrap().unwrap()["auths"]["a"]["auth"], "x");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
