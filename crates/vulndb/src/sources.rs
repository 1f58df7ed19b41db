//! The publications the database is updated from (`vulndb_sources`) and
//! what the updater remembers of each: the validators of the version
//! imported (for conditional requests), when it last succeeded and why it
//! last failed. Kept in `<vulndb>/sources.json`, beside `CURRENT`, written
//! whole and switched in by rename.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::PathBuf;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::{io_err, rfc3339, VulnDb, VulnDbError};

/// Sources one database may be updated from.
pub const MAX_SOURCES: usize = 64;
const MAX_URL_BYTES: usize = 2048;
const STATE: &str = "sources.json";

/// One configured publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// As configured (normalised by the URL parser).
    pub url: String,
    /// The database source it imports as: a file name derived from the URL,
    /// so two `all.zip` of different ecosystems stay two sources.
    pub name: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(Url),
    /// A file or a directory tree on this machine (a mirror, a clone).
    File(PathBuf),
}

impl Source {
    /// Whether it travels without TLS (allowed for mirrors; warned about).
    pub fn is_plain_http(&self) -> bool {
        matches!(&self.location, Location::Http(u) if u.scheme() == "http")
    }
}

fn bad(url: &str, why: impl Into<String>) -> VulnDbError {
    VulnDbError::BadSource {
        url: url.to_string(),
        why: why.into(),
    }
}

/// Checks one source URL: `https://`, `http://` (a mirror; nothing proves
/// what it serves, so status warns) or `file://` with an absolute path.
/// Sources are set by system administrators only; any other scheme is
/// still refused, and so are credentials in the URL (they would show in
/// status and logs).
pub fn parse_source(text: &str) -> Result<Source, VulnDbError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad(text, "an empty URL"));
    }
    if text.len() > MAX_URL_BYTES {
        let start: String = text.chars().take(64).collect();
        return Err(bad(&start, format!("longer than {MAX_URL_BYTES} bytes")));
    }
    let mut url = Url::parse(text).map_err(|e| bad(text, e.to_string()))?;
    url.set_fragment(None);
    let location = match url.scheme() {
        "https" | "http" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad(text, "no host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad(
                    text,
                    "credentials in a source URL are not supported (they would show in status and logs)",
                ));
            }
            Location::Http(url.clone())
        }
        "file" => {
            if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(bad(text, "a file URL names no host (file:///path)"));
            }
            let path = url
                .to_file_path()
                .map_err(|()| bad(text, "not an absolute file path"))?;
            Location::File(path)
        }
        other => {
            return Err(bad(
                text,
                format!("scheme {other:?}: sources are https://, http:// or file:// URLs"),
            ))
        }
    };
    Ok(Source {
        name: source_name(&url),
        url: url.to_string(),
        location,
    })
}

/// Checks a whole list: each URL, at most [`MAX_SOURCES`], none twice.
pub fn parse_sources(urls: &[String]) -> Result<Vec<Source>, VulnDbError> {
    if urls.len() > MAX_SOURCES {
        return Err(bad("", format!("{} sources; at most {MAX_SOURCES}", urls.len())));
    }
    let mut out: Vec<Source> = Vec::with_capacity(urls.len());
    for u in urls {
        let s = parse_source(u)?;
        if out.iter().any(|o| o.url == s.url || o.name == s.name) {
            return Err(bad(&s.url, "listed twice"));
        }
        out.push(s);
    }
    Ok(out)
}

/// A readable file name for the source: host, port and path with `/`
/// as `_` (`osv-vulnerabilities.storage.googleapis.com_Debian_all.zip`);
/// a URL with a query, or a long one, gets a hash of the whole URL too.
fn source_name(url: &Url) -> String {
    let mut base = match url.scheme() {
        "file" => format!("file{}", url.path()),
        _ => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}{port}{}", url.host_str().unwrap_or(""), url.path())
        }
    };
    if let Ok(decoded) = percent_decode(&base) {
        base = decoded;
    }
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name = name.trim_matches(|c| c == '_' || c == '.').to_string();
    if url.query().is_some() || name.len() > 120 || name.is_empty() {
        let keep: String = name.chars().take(100).collect();
        name = format!("{keep}-{:016x}", fnv1a(url.as_str().as_bytes()));
    }
    name
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// FNV-1a: a stable short name for a URL (not a security property).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the updater remembers, in `sources.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The sources set through the API; `None`: the configuration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<Vec<String>>,
    /// When the last update ended (Unix seconds), and whether every
    /// source succeeded in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<u64>,
    #[serde(default)]
    pub last_run_ok: bool,
    /// The end of the last update in which every source succeeded: the
    /// database in force was current then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<u64>,
    /// By URL.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub name: String,
    /// Validators of the version imported, sent back as `If-None-Match`
    /// and `If-Modified-Since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// For osv.dev's `<Ecosystem>/all.zip`: the newest `modified` time of
    /// its `modified_id.csv` that the records in force include; later
    /// updates fetch only the records modified after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub osv_modified: Option<String>,
    /// For `file://` sources: the size and modification time imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<u64>,
    /// The last check that ended with the database holding the current
    /// version (imported, or answered "not modified").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    /// When a new version was last imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
}

impl SourceState {
    /// Forgets which version of the source is in force (its validators and
    /// listing time), so the next update fetches it whole: its records
    /// were replaced from elsewhere (an imported export).
    pub(crate) fn forget_version(&mut self) {
        self.etag = None;
        self.last_modified = None;
        self.osv_modified = None;
        self.file_version = None;
    }
}

impl VulnDb {
    fn state_path(&self) -> PathBuf {
        self.dir().join(STATE)
    }

    /// What the updater remembers; empty before the first update.
    pub fn update_state(&self) -> Result<UpdateState, VulnDbError> {
        crate::read_state(&self.state_path())
    }

    /// Reads, changes and writes `sources.json` under its lock, so the
    /// updater and an API change never lose each other's writes.
    pub(crate) fn change_state<T>(&self, f: impl FnOnce(&mut UpdateState) -> T) -> Result<T, VulnDbError> {
        fs::create_dir_all(self.dir()).map_err(io_err(self.dir()))?;
        let lock_path = self.dir().join("sources.lock");
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        lock.lock().map_err(io_err(&lock_path))?;
        let mut state = self.update_state()?;
        let out = f(&mut state);
        crate::write_state(&self.state_path(), &state)?;
        Ok(out)
    }

    /// Sets (or with `None` clears) the sources chosen through the API;
    /// every URL is checked first.
    pub fn set_configured_sources(&self, urls: Option<Vec<String>>) -> Result<Vec<Source>, VulnDbError> {
        let parsed = urls.as_deref().map(parse_sources).transpose()?.unwrap_or_default();
        let normalised = urls.map(|_| parsed.iter().map(|s| s.url.clone()).collect());
        self.change_state(|s| s.configured = normalised)?;
        Ok(parsed)
    }

    /// The sources in force: the API's list when one was set, else
    /// `configuration` (the settings' `vulndb_sources`).
    pub fn effective_sources(&self, configuration: &[String]) -> Result<(Vec<String>, SourcesFrom), VulnDbError> {
        Ok(match self.update_state()?.configured {
            Some(list) => (list, SourcesFrom::Api),
            None => (configuration.to_vec(), SourcesFrom::Configuration),
        })
    }

    /// When the database in force was last known current (Unix seconds):
    /// its import, or the end of a later update in which every source
    /// succeeded (answered "not modified" or imported). `None` without a
    /// database.
    pub fn fresh_at(&self) -> Result<Option<u64>, VulnDbError> {
        let Some(status) = self.status()? else {
            return Ok(None);
        };
        let updated = self.update_state()?.updated_at.unwrap_or(0);
        Ok(Some(status.imported_at.max(updated)))
    }

    /// Each source in `urls` as status shows it: records in force, last
    /// success and error, and ages at `now` (Unix seconds).
    pub fn source_views(&self, urls: &[String], now: u64) -> Result<Vec<SourceView>, VulnDbError> {
        let state = self.update_state()?;
        let status = self.status()?;
        let views = urls
            .iter()
            .map(|url| {
                let parsed = parse_source(url);
                let name = parsed.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                let st = state.sources.get(url);
                let imported = status.as_ref().and_then(|s| s.sources.iter().find(|x| x.name == name));
                let at = |t: Option<u64>| t.map(rfc3339);
                let last_success = st.and_then(|s| s.last_success);
                SourceView {
                    url: url.clone(),
                    name: name.clone(),
                    plain_http: parsed.as_ref().is_ok_and(Source::is_plain_http),
                    records: imported.map(|s| s.records),
                    rejected: imported.map(|s| s.rejected),
                    imported_at: at(imported.map(|s| s.imported_at)),
                    last_success: at(last_success),
                    last_change: at(st.and_then(|s| s.last_change)),
                    last_attempt: at(st.and_then(|s| s.last_attempt)),
                    last_error: match &parsed {
                        Err(e) => Some(e.to_string()),
                        Ok(_) => st.and_then(|s| s.last_error.clone()),
                    },
                    last_error_at: at(st.and_then(|s| s.last_error_at)),
                    age_seconds: last_success.map(|t| now.saturating_sub(t)),
                }
            })
            .collect();
        Ok(views)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourcesFrom {
    Api,
    Configuration,
}

/// One source as `db status` and `GET /api/v1/vulndb` show it; times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceView {
    pub url: String,
    pub name: String,
    /// Fetched without TLS: nothing proves the data is the publisher's.
    pub plain_http: bool,
    /// Records (and rejected records) of this source in the database in force.
    pub records: Option<u64>,
    pub rejected: Option<u64>,
    pub imported_at: Option<String>,
    pub last_success: Option<String>,
    pub last_change: Option<String>,
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Seconds since the last success.
    pub age_seconds: Option<u64>,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_urls_are_checked() {
        let table: &[(&str, Result<&str, &str>)] = &[
            (
                "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
                Ok("osv-vulnerabilities.storage.googleapis.com_Debian_all.zip"),
            ),
            (
                "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip#x",
                Ok("osv-vulnerabilities.storage.googleapis.com_PyPI_all.zip"),
            ),
            (
                "http://127.0.0.1:8080/npm.osv.jsonl.gz",
                Ok("127.0.0.1_8080_npm.osv.jsonl.gz"),
            ),
            (
                "file:///srv/mirror/go.osv.jsonl.gz",
                Ok("file_srv_mirror_go.osv.jsonl.gz"),
            ),
            ("file:///srv/mirror%20two/a.json", Ok("file_srv_mirror_two_a.json")),
            ("  https://example.org/a.json  ", Ok("example.org_a.json")),
            ("ftp://example.org/a.json", Err("scheme \"ftp\"")),
            ("gopher://example.org/", Err("scheme")),
            ("data:text/plain,hello", Err("scheme")),
            ("https://user:secret@example.org/a.json", Err("credentials")),
            ("https://token@example.org/a.json", Err("credentials")),
            ("file://otherhost/a.json", Err("names no host")),
            ("not a url", Err("relative URL")),
            ("", Err("empty")),
        ];
        for (url, want) in table {
            match (parse_source(url), want) {
                (Ok(s), Ok(name)) => assert_eq!(s.name, *name, "{url}"),
                (Err(e), Err(part)) => assert!(e.to_string().contains(part), "{url}: {e}"),
                (got, want) => panic!("{url}: {got:?}, want {want:?}"),
            }
        }
        let long = format!("https://example.org/{}", "a/".repeat(2000));
        assert!(parse_source(&long).unwrap_err().to_string().contains("longer than"));
    }

    #[test]
    fn names_stay_apart_where_urls_differ() {
        let a = parse_source("https://example.org/feed.json?page=1").unwrap();
        let b = parse_source("https://example.org/feed.json?page=2").unwrap();
        assert_ne!(a.name, b.name);
        assert!(a.name.starts_with("example.org_feed.json-"), "{}", a.name);
        let long = parse_source(&format!("https://example.org/{}.json", "x".repeat(300))).unwrap();
        assert!(long.name.len() <= 120, "{}", long.name);
        let list = |urls: &[&str]| parse_sources(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        assert!(list(&["https://a.org/x.json", "https://a.org/x.json#frag"])
            .unwrap_err()
            .to_string()
            .contains("twice"));
        let many: Vec<String> = (0..=MAX_SOURCES).map(|i| format!("https://a.org/{i}.json")).collect();
        assert!(parse_sources(&many).unwrap_err().to_string().contains("at most"));
        assert!(parse_source("http://mirror.local/a.json").unwrap().is_plain_http());
        assert!(!parse_source("https://mirror.local/a.json").unwrap().is_plain_http());
    }

    #[test]
    fn api_sources_override_the_configuration_until_cleared() {
        let data = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(data.path());
        let config = vec!["https://a.org/config.json".to_string()];
        assert_eq!(
            db.effective_sources(&config).unwrap(),
            (config.clone(), SourcesFrom::Configuration)
        );
        db.set_configured_sources(Some(vec!["file:///srv/x.json".into()]))
            .unwrap();
        assert_eq!(
            db.effective_sources(&config).unwrap(),
            (vec!["file:///srv/x.json".to_string()], SourcesFrom::Api)
        );
        assert!(db.set_configured_sources(Some(vec!["ftp://x/y".into()])).is_err());
        assert_eq!(
            db.effective_sources(&config).unwrap().1,
            SourcesFrom::Api,
            "a refused change changes nothing"
        );
        db.set_configured_sources(None).unwrap();
        assert_eq!(db.effective_sources(&config).unwrap().1, SourcesFrom::Configuration);
    }
}
