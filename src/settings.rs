//! Configuration: embedded defaults, then a TOML file, then `PORTCULLIS_*`
//! environment variables, then command-line flags; later wins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use portcullis_server::webhooks::AllowList;
use portcullis_server::{
    AccessSettings, Anonymous, ConnectionLimits, GcSettings, ScanSettings, TlsFiles, TrustedProxies, WebhookSettings,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Directory for blobs, uploads and (by default) the SQLite database.
    pub data: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default `sqlite://<data>/portcullis.db`.
    pub database: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Seconds between background garbage collections in `serve`; 0 turns them off.
    pub gc_interval_secs: u64,
    pub gc_manifest_grace_secs: u64,
    pub gc_blob_grace_secs: u64,
    pub upload_expiry_secs: u64,
    /// How long a cached manifest read may be served without asking the
    /// database; bounds how stale a change made by another process can look.
    /// 0 turns the cache off.
    pub manifest_cache_ttl_ms: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// What callers without credentials may do everywhere: `none` (the
    /// default), `pull` or `push`. Public repositories are pullable anyway.
    pub anonymous: Anonymous,
    /// The token endpoint's public URL, when clients reach the registry
    /// through a proxy; by default built from the request's Host.
    pub token_realm: Option<String>,
    /// The `service` (audience) of registry tokens.
    pub token_service: String,
    pub token_ttl_secs: u64,
    /// Record pulls in the audit trail.
    pub audit_pulls: bool,
    /// Pull audit records that may wait for the writer before pulls wait for it.
    pub pull_audit_queue: usize,
    /// A web UI session unused this long ends.
    pub ui_session_idle_secs: u64,
    /// A web UI session ends this long after sign-in, however active.
    pub ui_session_max_secs: u64,
    /// Bytes one layer (or one vulnerability database input) may expand
    /// to when decompressed; past it the scan stops with an error.
    pub scan_max_layer_bytes: u64,
    /// The largest single file read into memory while scanning (a package
    /// database, a manifest, one OSV record).
    pub scan_max_file_bytes: u64,
    /// Images `serve` scans at once; 0 turns scanning off.
    pub scan_workers: usize,
    /// Layers of one image read at once, by `serve` and `scan`; 0 (the
    /// default): one per core. Above 1, each layer is read, decompressed
    /// and walked by a pipeline of threads; 1 reads layer after layer on
    /// one thread.
    pub scan_layer_workers: usize,
    /// Seconds between looks for a database `db import` has replaced.
    pub scan_db_poll_secs: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose
    /// `X-Forwarded-For` names the client; empty: the peer is the client.
    pub trusted_proxies: String,
    /// The registry's URL as clients see it, for webhook payloads;
    /// default `http(s)://<listen>`.
    pub public_url: Option<String>,
    /// Webhook targets allowed although internal (loopback, private,
    /// link-local): addresses, CIDR networks or host names, comma-separated.
    pub webhook_allow: String,
    pub webhook_max_attempts: u32,
    pub webhook_max_age_secs: u64,
    /// The first retry's delay; each next one three times longer (at most 6 h).
    pub webhook_retry_base_ms: u64,
    pub webhook_timeout_secs: u64,
    pub webhook_poll_ms: u64,
    /// `deny` (the default) or `allow`: what the admission webhook says of
    /// images from other registries.
    pub admission_foreign_images: String,
    /// Other names of this registry (`host[:port]`, comma-separated) that
    /// admission judges as its own.
    pub registry_aliases: String,
    /// Publications the vulnerability database is updated from: https://,
    /// http:// (mirrors) or file:// URLs; a TOML list, or comma-separated
    /// in `PORTCULLIS_VULNDB_SOURCES`. A list set through the API overrides it.
    #[serde(deserialize_with = "list_or_commas")]
    pub vulndb_sources: Vec<String>,
    /// How often `serve` updates the database from them (`6h`, `30m`).
    pub vulndb_update_interval: String,
    /// A database artifact `db push` wrote (`HOST/REPO[:TAG]`, typically a
    /// repository of this registry or an internal mirror) that `serve`
    /// pulls and imports when it changes; exclusive with `vulndb_sources`.
    pub vulndb_pull: Option<String>,
    /// The public keys (PEM, or paths of PEM files) one of which must have
    /// signed a pulled artifact; a TOML list, or comma-separated.
    #[serde(deserialize_with = "list_or_commas")]
    pub vulndb_pull_keys: Vec<String>,
    /// How often `serve` pulls (`6h`, `30m`).
    pub vulndb_pull_interval: String,
    /// `USER:TOKEN` for the registry `vulndb_pull` names (pull rights suffice).
    pub vulndb_pull_creds: Option<String>,
    /// `false` talks plain HTTP to it.
    pub vulndb_pull_tls_verify: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let gc = GcSettings::default();
        let limits = ConnectionLimits::default();
        let hooks = WebhookSettings::default();
        Settings {
            listen: "127.0.0.1:5000".into(),
            data: PathBuf::from("./portcullis-data"),
            database: None,
            tls_cert: None,
            tls_key: None,
            gc_interval_secs: 3600,
            gc_manifest_grace_secs: gc.manifest_grace.as_secs(),
            gc_blob_grace_secs: gc.blob_grace.as_secs(),
            upload_expiry_secs: gc.upload_expiry.as_secs(),
            manifest_cache_ttl_ms: 1000,
            log_format: "text".into(),
            anonymous: Anonymous::None,
            token_realm: None,
            token_service: "portcullis".into(),
            token_ttl_secs: 300,
            audit_pulls: true,
            pull_audit_queue: 65_536,
            ui_session_idle_secs: 30 * 60,
            ui_session_max_secs: 12 * 3600,
            scan_max_layer_bytes: 16 << 30,
            scan_max_file_bytes: 64 << 20,
            scan_workers: 1,
            scan_layer_workers: 0,
            scan_db_poll_secs: 5,
            max_connections: limits.max_connections,
            header_read_timeout_secs: limits.header_read_timeout.as_secs(),
            tls_handshake_timeout_secs: limits.tls_handshake_timeout.as_secs(),
            trusted_proxies: String::new(),
            public_url: None,
            webhook_allow: String::new(),
            webhook_max_attempts: hooks.max_attempts,
            webhook_max_age_secs: hooks.max_age.as_secs(),
            webhook_retry_base_ms: hooks.retry_base.as_millis() as u64,
            webhook_timeout_secs: hooks.timeout.as_secs(),
            webhook_poll_ms: hooks.poll.as_millis() as u64,
            admission_foreign_images: "deny".into(),
            registry_aliases: String::new(),
            vulndb_sources: Vec::new(),
            vulndb_update_interval: "6h".into(),
            vulndb_pull: None,
            vulndb_pull_keys: Vec::new(),
            vulndb_pull_interval: "6h".into(),
            vulndb_pull_creds: None,
            vulndb_pull_tls_verify: true,
        }
    }
}

/// Flags that override the file and the environment when given.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_manifest_grace_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_blob_grace_secs: Option<u64>,
}

impl Settings {
    pub fn load(config: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            anyhow::ensure!(path.exists(), "configuration file {} does not exist", path.display());
            fig = fig.merge(Toml::file(path));
        }
        let fig = fig
            .merge(Env::prefixed("PORTCULLIS_").ignore(&[
                "test_postgres",
                "admin_password",
                "require_clients",
                "key_encryption_key",
            ]))
            .merge(Serialized::defaults(overrides));
        let s: Settings = fig.extract()?;
        anyhow::ensure!(
            s.tls_cert.is_some() == s.tls_key.is_some(),
            "TLS needs both tls_cert and tls_key (or neither)"
        );
        s.trusted_proxies
            .parse::<TrustedProxies>()
            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        anyhow::ensure!(s.max_connections > 0, "max_connections must be at least 1");
        s.webhook_allow
            .parse::<AllowList>()
            .map_err(|e| anyhow::anyhow!("webhook_allow: {e}"))?;
        anyhow::ensure!(s.webhook_max_attempts > 0, "webhook_max_attempts must be at least 1");
        anyhow::ensure!(
            ["deny", "allow"].contains(&s.admission_foreign_images.as_str()),
            "admission_foreign_images is deny or allow"
        );
        s.vulndb_update_interval()?;
        portcullis_vulndb::parse_sources(&s.vulndb_sources).map_err(|e| anyhow::anyhow!("vulndb_sources: {e}"))?;
        s.check_vulndb_pull()?;
        Ok(s)
    }

    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data.join("portcullis.db").display()))
    }

    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    pub fn access(&self) -> AccessSettings {
        AccessSettings {
            anonymous: self.anonymous,
            service: self.token_service.clone(),
            realm: self.token_realm.clone(),
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            audit_pulls: self.audit_pulls,
            pull_audit_queue: self.pull_audit_queue.max(1),
            key_dir: self.key_dir(),
            trusted_proxies: self.trusted_proxies.parse().unwrap_or_default(),
            admission_foreign_images: self.admission_foreign_images == "allow",
            registry_aliases: self
                .registry_aliases
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
            listen: self.listen.parse().ok(),
        }
    }

    pub fn ui(&self) -> portcullis_ui::UiSettings {
        portcullis_ui::UiSettings {
            idle: Duration::from_secs(self.ui_session_idle_secs.max(60)),
            absolute: Duration::from_secs(self.ui_session_max_secs.max(60)),
            secure_cookies: self.tls_cert.is_some(),
        }
    }

    pub fn webhooks(&self) -> WebhookSettings {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        WebhookSettings {
            allow: self.webhook_allow.parse().unwrap_or_default(),
            max_attempts: self.webhook_max_attempts,
            max_age: Duration::from_secs(self.webhook_max_age_secs),
            retry_base: Duration::from_millis(self.webhook_retry_base_ms.max(10)),
            timeout: Duration::from_secs(self.webhook_timeout_secs.max(1)),
            poll: Duration::from_millis(self.webhook_poll_ms.max(10)),
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", self.listen)),
        }
    }

    /// The key-encryption key from `PORTCULLIS_KEY_ENCRYPTION_KEY` (64 hex
    /// digits), if set; otherwise the server keeps one in its key directory.
    pub fn kek(&self) -> anyhow::Result<Option<[u8; 32]>> {
        hex_key_from_env("PORTCULLIS_KEY_ENCRYPTION_KEY")
    }

    /// Where the audit key comes from, for messages: the environment
    /// variable when it is set, else the key file.
    pub fn audit_key_source(&self) -> String {
        if std::env::var_os(AUDIT_KEY_ENV).is_some() {
            AUDIT_KEY_ENV.into()
        } else {
            self.key_dir().join("audit.key").display().to_string()
        }
    }

    /// The audit key from `PORTCULLIS_AUDIT_KEY`, if set (else the key file).
    pub fn audit_key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        hex_key_from_env(AUDIT_KEY_ENV)
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_secs.max(1)),
        }
    }

    pub fn scan(&self) -> ScanSettings {
        ScanSettings {
            workers: self.scan_workers,
            layer_workers: self.scan_layer_workers(),
            limits: self.scan_limits(),
            data_dir: self.data.clone(),
            db_poll: Duration::from_secs(self.scan_db_poll_secs.max(1)),
            updates: portcullis_server::UpdateSettings {
                sources: self.vulndb_sources.clone(),
                interval: self.vulndb_update_interval().unwrap_or(Duration::from_secs(6 * 3600)),
                options: self.vulndb_update_options(),
            },
            pull: self.vulndb_pull_settings(),
        }
    }

    /// `vulndb_pull`, when set (an empty value is none).
    pub fn vulndb_pull(&self) -> Option<&str> {
        self.vulndb_pull.as_deref().map(str::trim).filter(|r| !r.is_empty())
    }

    /// A pull needs a reference that parses, keys that read, an interval,
    /// and no sources beside it (each would replace the other's database).
    fn check_vulndb_pull(&self) -> anyhow::Result<()> {
        parse_interval("vulndb_pull_interval", &self.vulndb_pull_interval)?;
        let Some(reference) = self.vulndb_pull() else {
            return Ok(());
        };
        reference
            .parse::<portcullis_registry_client::ImageRef>()
            .map_err(|e| anyhow::anyhow!("vulndb_pull: {e}"))?;
        anyhow::ensure!(
            !self.vulndb_pull_keys.is_empty(),
            "vulndb_pull needs vulndb_pull_keys: a pulled database is imported only when one of them signed it"
        );
        self.vulndb_pull_keys()?;
        anyhow::ensure!(
            self.vulndb_sources.is_empty(),
            "vulndb_pull and vulndb_sources exclude each other: the database comes from one or the other"
        );
        Ok(())
    }

    /// `vulndb_pull_keys`: each a PEM public key, or the path of one.
    pub fn vulndb_pull_keys(&self) -> anyhow::Result<Vec<portcullis_sign::PublicKey>> {
        self.vulndb_pull_keys
            .iter()
            .map(|k| {
                let pem = if k.contains("-----BEGIN") {
                    k.clone()
                } else {
                    std::fs::read_to_string(k).map_err(|e| anyhow::anyhow!("vulndb_pull_keys: {k}: {e}"))?
                };
                portcullis_sign::PublicKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("vulndb_pull_keys: {e}"))
            })
            .collect()
    }

    /// Where and how often `serve` pulls the database.
    pub fn vulndb_pull_settings(&self) -> portcullis_server::PullSettings {
        portcullis_server::PullSettings {
            reference: self.vulndb_pull().map(str::to_string),
            interval: parse_interval("vulndb_pull_interval", &self.vulndb_pull_interval)
                .unwrap_or(Duration::from_secs(6 * 3600)),
            options: portcullis_vulndb::PullOptions {
                access: portcullis_vulndb::Access {
                    creds: self.vulndb_pull_creds.clone().filter(|c| !c.is_empty()),
                    tls_verify: self.vulndb_pull_tls_verify,
                    ..Default::default()
                },
                // Checked when the settings were loaded.
                keys: self.vulndb_pull_keys().unwrap_or_default(),
                limits: self.vulndb_update_options().limits,
            },
        }
    }

    /// `vulndb_update_interval`, at least a second.
    pub fn vulndb_update_interval(&self) -> anyhow::Result<Duration> {
        parse_interval("vulndb_update_interval", &self.vulndb_update_interval)
    }

    /// Downloads and imports of updates are bounded like `db import`.
    pub fn vulndb_update_options(&self) -> portcullis_vulndb::UpdateOptions {
        portcullis_vulndb::UpdateOptions {
            limits: portcullis_vulndb::Limits {
                max_input_bytes: self.scan_max_layer_bytes,
                max_record_bytes: self.scan_max_file_bytes,
            },
            ..Default::default()
        }
    }

    /// `scan_layer_workers`, 0 read as the number of cores.
    pub fn scan_layer_workers(&self) -> usize {
        match self.scan_layer_workers {
            0 => portcullis_server::available_cores(),
            n => n,
        }
    }

    pub fn scan_limits(&self) -> portcullis_scan::layer::Limits {
        portcullis_scan::layer::Limits {
            max_layer_bytes: self.scan_max_layer_bytes,
            max_file_bytes: self.scan_max_file_bytes,
            ..Default::default()
        }
    }

    /// Token signing keys: inside the data directory, owner-only.
    pub fn key_dir(&self) -> PathBuf {
        self.data.join("keys")
    }

    pub fn gc(&self) -> GcSettings {
        GcSettings {
            manifest_grace: Duration::from_secs(self.gc_manifest_grace_secs),
            blob_grace: Duration::from_secs(self.gc_blob_grace_secs),
            upload_expiry: Duration::from_secs(self.upload_expiry_secs),
        }
    }
}

/// A list from TOML, or one string of comma-separated items (the environment).
/// A duration setting (`6h`, `30m`), at least a second.
fn parse_interval(name: &str, text: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| anyhow::anyhow!("{name} {text:?}: {e}"))?;
    anyhow::ensure!(d >= Duration::from_secs(1), "{name} must be at least 1s");
    Ok(d)
}

fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(d)? {
        ListOrCommas::List(l) => l,
        ListOrCommas::Commas(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// A 32-byte key given as 64 hex digits in the environment variable `name`.
/// The environment variable that holds the audit key (hex).
const AUDIT_KEY_ENV: &str = "PORTCULLIS_AUDIT_KEY";

fn hex_key_from_env(name: &str) -> anyhow::Result<Option<[u8; 32]>> {
    let Ok(hex) = std::env::var(name) else {
        return Ok(None);
    };
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("{name} is not hex"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{name} must be 32 bytes (64 hex digits)"))?;
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "listen = \"0.0.0.0:6000\"\ndata = \"/srv/p\"\ngc_blob_grace_secs = 10\n",
            )?;
            jail.set_env("PORTCULLIS_DATA", "/env/p");
            let s = Settings::load(Some(Path::new("p.toml")), Overrides::default()).unwrap();
            assert_eq!(s.listen, "0.0.0.0:6000");
            assert_eq!(s.data, PathBuf::from("/env/p"), "environment beats the file");
            assert_eq!(s.gc_blob_grace_secs, 10);
            assert_eq!(s.database_url(), "sqlite:///env/p/portcullis.db");
            let flags = Overrides {
                data: Some("/flag".into()),
                ..Default::default()
            };
            let s = Settings::load(Some(Path::new("p.toml")), flags).unwrap();
            assert_eq!(s.data, PathBuf::from("/flag"), "flags beat the environment");
            assert!(Settings::load(Some(Path::new("missing.toml")), Overrides::default()).is_err());
            jail.set_env("PORTCULLIS_TLS_CERT", "/c.pem");
            assert!(Settings::load(None, Overrides::default()).is_err(), "cert without key");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn vulndb_sources_from_toml_or_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "vulndb_sources = [\"https://a.org/x.json\", \"file:///srv/y.json\"]\nvulndb_update_interval = \"30m\"\n",
            )?;
            let s = Settings::load(Some(Path::new("p.toml")), Overrides::default()).unwrap();
            assert_eq!(s.vulndb_sources, ["https://a.org/x.json", "file:///srv/y.json"]);
            assert_eq!(s.scan().updates.interval, Duration::from_secs(1800));
            jail.set_env(
                "PORTCULLIS_VULNDB_SOURCES",
                "https://b.org/1.json, http://127.0.0.1:8080/2.json",
            );
            let s = Settings::load(Some(Path::new("p.toml")), Overrides::default()).unwrap();
            assert_eq!(
                s.vulndb_sources,
                ["https://b.org/1.json", "http://127.0.0.1:8080/2.json"]
            );
            let defaults = Settings::load(None, Overrides::default()).unwrap();
            assert_eq!(defaults.scan().updates.interval, Duration::from_secs(6 * 3600));
            jail.set_env("PORTCULLIS_VULNDB_SOURCES", "ftp://c.org/3.json");
            let e = Settings::load(None, Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("vulndb_sources") && e.contains("ftp"), "{e}");
            jail.set_env("PORTCULLIS_VULNDB_SOURCES", "");
            jail.set_env("PORTCULLIS_VULNDB_UPDATE_INTERVAL", "often");
            assert!(Settings::load(None, Overrides::default()).is_err());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn vulndb_pull_needs_keys_that_read_and_no_sources() {
        let (a, _) = portcullis_sign::SigningKey::generate().unwrap();
        let (b, _) = portcullis_sign::SigningKey::generate().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.pub", &a.public.to_pem())?;
            jail.create_file(
                "p.toml",
                "vulndb_pull = \"registry.internal/security/vulndb:latest\"\nvulndb_pull_keys = [\"a.pub\"]\nvulndb_pull_interval = \"15m\"\nvulndb_pull_creds = \"mirror:token\"\n",
            )?;
            let load = || Settings::load(Some(Path::new("p.toml")), Overrides::default());
            let pull = load().unwrap().scan().pull;
            assert_eq!(
                pull.reference.as_deref(),
                Some("registry.internal/security/vulndb:latest")
            );
            assert_eq!(pull.interval, Duration::from_secs(900));
            assert_eq!(pull.options.access.creds.as_deref(), Some("mirror:token"));
            assert!(pull.options.access.tls_verify);
            assert_eq!(pull.options.keys, vec![a.public.clone()]);
            // Keys inline as PEM too, comma-separated in the environment.
            jail.set_env(
                "PORTCULLIS_VULNDB_PULL_KEYS",
                format!("{},{}", a.public.to_pem(), b.public.to_pem()),
            );
            assert_eq!(
                load().unwrap().scan().pull.options.keys,
                vec![a.public.clone(), b.public.clone()]
            );
            jail.set_env("PORTCULLIS_VULNDB_PULL_KEYS", "missing.pub");
            assert!(load().unwrap_err().to_string().contains("missing.pub"));
            jail.set_env("PORTCULLIS_VULNDB_PULL_KEYS", "");
            assert!(load().unwrap_err().to_string().contains("vulndb_pull_keys"));
            jail.set_env("PORTCULLIS_VULNDB_PULL_KEYS", "a.pub");
            jail.set_env("PORTCULLIS_VULNDB_SOURCES", "https://a.org/x.json");
            assert!(load().unwrap_err().to_string().contains("exclude each other"));
            jail.set_env("PORTCULLIS_VULNDB_SOURCES", "");
            jail.set_env("PORTCULLIS_VULNDB_PULL", "no-registry-named");
            assert!(load().unwrap_err().to_string().contains("vulndb_pull"));
            jail.set_env("PORTCULLIS_VULNDB_PULL", "");
            assert!(load().unwrap().scan().pull.reference.is_none(), "empty: no pull");
            let defaults = Settings::load(None, Overrides::default()).unwrap();
            assert_eq!(defaults.scan().pull.interval, Duration::from_secs(6 * 3600));
            Ok(())
        });
    }
}
