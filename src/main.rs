//! `portcullis`: the command line, thin over the crates.

mod attestation;
mod db;
mod manage;
mod remote;
mod scan;
mod settings;
mod signature;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis_meta::Meta;
use portcullis_server::{app_with, collect_garbage_logged, Registry, RegistryOptions};
use portcullis_store::BlobStore;
use settings::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A container registry that gates the software supply chain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the registry keeps its state; shared by every command.
#[derive(clap::Args)]
struct StateArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Data directory (blobs, uploads, SQLite database) [default: ./portcullis-data].
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    /// Metadata database URL (sqlite://PATH or postgres://…) [default: SQLite in the data directory].
    #[arg(long, value_name = "URL", global = true)]
    database: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry.
    Serve {
        #[command(flatten)]
        state: StateArgs,
        /// Address to listen on [default: 127.0.0.1:5000].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// PEM certificate chain for HTTPS.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Remove untagged manifests and unreferenced blobs; safe while the registry serves.
    Gc {
        #[command(flatten)]
        state: StateArgs,
        /// Keep untagged manifests younger than this many seconds.
        #[arg(long, value_name = "SECS")]
        manifest_grace: Option<u64>,
        /// Keep unreferenced blobs younger than this many seconds.
        #[arg(long, value_name = "SECS")]
        blob_grace: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Manage accounts offline.
    User {
        #[command(flatten)]
        state: StateArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens: on a running server (`portcullis login` first),
    /// or offline on the data directory when --data, --database or --config
    /// is given.
    Token {
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        command: remote::TokenCommand,
    },
    /// Verify or export the audit trail.
    Audit {
        #[command(flatten)]
        state: StateArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Manage the token signing keys.
    Key {
        #[command(flatten)]
        state: StateArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Scan an image for components and known vulnerabilities. Exits 1
    /// when --fail-on is met, 2 when the scan itself fails.
    Scan {
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        args: scan::ScanArgs,
    },
    /// Sign an image in any registry with a cosign key file, in cosign's
    /// tag form (default) or as a sigstore bundle referrer. Exits 2 on error.
    Sign(signature::SignArgs),
    /// Verify an image's signatures against public keys or a Portcullis
    /// team's current keys. Exits 0 verified, 1 not verified, 2 error.
    Verify(signature::VerifyArgs),
    /// Attest an image in any registry: an in-toto statement (SLSA
    /// provenance, an SBOM, …) signed with a cosign key file, in cosign's
    /// `.att` tag form (default) or as a sigstore bundle referrer. Exits 2
    /// on error.
    Attest(attestation::AttestArgs),
    /// Verify an image's attestations of one predicate type against public
    /// keys or a Portcullis team's current keys, and for SLSA provenance
    /// its builder and source. Exits 0 verified, 1 refused, 2 error.
    VerifyAttestation(attestation::VerifyAttestationArgs),
    /// The offline vulnerability database (OSV records).
    Db {
        #[command(flatten)]
        state: StateArgs,
        #[command(subcommand)]
        command: DbCommand,
    },
    #[command(flatten)]
    Remote(remote::RemoteCommand),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Import OSV records: JSON, JSON Lines, gzip or zstd of either, zip archives or
    /// directories. Each input is a source named by its file name and
    /// replaces an earlier source of that name; all or nothing. A file
    /// `db export` wrote is a whole database: it replaces every source.
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Drop the sources not named in this import.
        #[arg(long)]
        replace: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Write the database in force to one file (zstd-compressed tar: a
    /// manifest of sources and digests, then each source's records), to
    /// carry to a registry without network; `db import` reads it back.
    Export {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Push the database in force (exported on the way, or --file) to a
    /// registry as an OCI artifact, signed with --key as `portcullis sign`
    /// signs; a disconnected registry takes it with `db pull`. Exits 2 on error.
    Push(db::PushArgs),
    /// Pull a database artifact `db push` wrote, verify a cosign signature
    /// on it by one of --key, check its bytes against their digests, and
    /// import it as one new generation. Exits 0 imported (or already in
    /// force), 1 refused (unsigned, signed by none of the keys, bytes not
    /// matching their digest), 2 on an error.
    Pull(db::PullArgs),
    /// The sources in force, their record counts and import times.
    Status {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Update from the configured sources (`vulndb_sources`, or the list set
    /// through the API) once: conditional, resumable downloads, then one
    /// import of what changed. Exits 1 when a source failed.
    Update {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input with
    /// --password-stdin, else generated and printed once.
    Create {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (standard input or generated).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts: users, organizations and service accounts.
    List,
    /// Delete an account with its memberships, grants and tokens.
    Delete { name: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain (keyed with the audit key); exits 1 naming the
    /// first broken record, or a missing or changed anchored record.
    Verify {
        /// An anchor printed earlier by `audit anchor`: the log must still
        /// hold that exact record.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
    /// Print the current head (position, hash, time) as JSON, to keep
    /// somewhere the database's writers cannot reach.
    Anchor,
    /// Write the trail as JSON Lines to standard output.
    Export {
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Start signing tokens with a new key; tokens signed by the old one
    /// stay valid until they expire.
    Rotate,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The registry over the data directory; `background`: also scan and
/// deliver webhooks (the server), not for one-off commands.
async fn open(settings: &Settings, background: bool) -> anyhow::Result<Arc<Registry>> {
    let store = BlobStore::open(&settings.data).with_context(|| format!("opening {}", settings.data.display()))?;
    let meta = open_meta(settings).await?;
    let options = RegistryOptions {
        manifest_cache_ttl: Duration::from_millis(settings.manifest_cache_ttl_ms),
        access: settings.access(),
        tls: settings.tls().is_some(),
        scan: settings.scan(),
        webhooks: settings.webhooks(),
        kek: settings.kek()?,
        background,
    };
    Registry::new(meta, store, options).context("loading the token signing keys")
}

/// Settings for the offline commands, which only need the data directory and database.
fn offline_settings(state: StateArgs) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        data: state.data,
        database: state.database,
        ..Default::default()
    };
    let settings = Settings::load(state.config.as_deref(), overrides)?;
    init_logging(settings.log_format == "json");
    Ok(settings)
}

/// The metadata database, hashing audit records under the audit key.
async fn open_meta(settings: &Settings) -> anyhow::Result<Meta> {
    let meta = open_meta_to_read_audit(settings).await?;
    if meta.audit_key_fits().await? == Some(false) {
        anyhow::bail!(
            "the audit trail's first record does not verify under the audit key from {}: the trail was \
             written with another key, or that record was altered; refusing to write to it \
             (`portcullis audit verify` reports the chain)",
            settings.audit_key_source()
        )
    }
    Ok(meta)
}

/// As `open_meta`, for the commands that only read and check the audit
/// trail: they report a key that does not fit as a broken chain.
async fn open_meta_to_read_audit(settings: &Settings) -> anyhow::Result<Meta> {
    std::fs::create_dir_all(&settings.data).with_context(|| format!("creating {}", settings.data.display()))?;
    let mut meta = Meta::connect(&settings.database_url())
        .await
        .context("opening the metadata database")?;
    apply_audit_key(&mut meta, settings).await?;
    Ok(meta)
}

/// The audit key: `PORTCULLIS_AUDIT_KEY`, or `<data>/keys/audit.key`. The
/// file is made on first use, and the chain written so far (if it
/// verifies) is moved under it in one transaction. A key given later never
/// re-keys a trail: a chain rewritten without the key would be laundered.
async fn apply_audit_key(meta: &mut Meta, settings: &Settings) -> anyhow::Result<()> {
    if let Some(key) = settings.audit_key()? {
        meta.set_audit_key(&key);
        return Ok(());
    }
    let dir = settings.key_dir();
    if let Some(key) = portcullis_server::keys::load_secret(&dir, "audit.key")? {
        meta.set_audit_key(&key);
        return Ok(());
    }
    let key = portcullis_server::keys::random_secret()?;
    portcullis_server::keys::store_secret(&dir, "audit.key", &key)?;
    match meta.key_audit_trail(&key).await {
        Ok(Ok(records)) => {
            tracing::info!(records, "audit trail keyed with a new key in {}", dir.display());
            meta.set_audit_key(&key);
            Ok(())
        }
        Ok(Err(broken)) if broken.seq == 1 => {
            let _ = std::fs::remove_file(dir.join("audit.key"));
            // Records appended without the key would break the chain for good.
            anyhow::bail!(
                "the audit trail's first record does not verify without a key: it was keyed with an audit key \
                 this process does not have (set PORTCULLIS_AUDIT_KEY or restore {}), or altered; \
                 refusing to write to it",
                dir.join("audit.key").display()
            )
        }
        Ok(Err(broken)) => {
            let _ = std::fs::remove_file(dir.join("audit.key"));
            tracing::error!(
                "the audit trail is broken at record {} ({}): left unkeyed; `portcullis audit verify` reports it",
                broken.seq,
                broken.reason
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(dir.join("audit.key"));
            Err(e).context("keying the audit trail")
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            state,
            listen,
            tls_cert,
            tls_key,
        } => {
            let overrides = Overrides {
                listen,
                data: state.data,
                database: state.database,
                tls_cert,
                tls_key,
                ..Default::default()
            };
            let settings = Settings::load(state.config.as_deref(), overrides)?;
            init_logging(settings.log_format == "json");
            let registry = open(&settings, true).await?;
            manage::ensure_admin(&registry.meta, &settings.data).await?;
            if settings.gc_interval_secs > 0 {
                let (reg, gc, every) = (
                    registry.clone(),
                    settings.gc(),
                    Duration::from_secs(settings.gc_interval_secs),
                );
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        collect_garbage_logged(&reg, &gc).await;
                    }
                });
            }
            let listener = tokio::net::TcpListener::bind(&settings.listen)
                .await
                .with_context(|| format!("listening on {}", settings.listen))?;
            let scheme = if settings.tls().is_some() { "https" } else { "http" };
            tracing::info!(address = %listener.local_addr()?, %scheme, data = %settings.data.display(), "serving");
            portcullis_server::serve(
                listener,
                app_with(registry.clone(), portcullis_ui::router(settings.ui())),
                settings.tls(),
                settings.connection_limits(),
                shutdown_signal(),
            )
            .await?;
            registry.flush_pull_audit().await;
            registry.meta.close().await;
        }
        Command::Gc {
            state,
            manifest_grace,
            blob_grace,
            format,
        } => {
            let overrides = Overrides {
                data: state.data,
                database: state.database,
                gc_manifest_grace_secs: manifest_grace,
                gc_blob_grace_secs: blob_grace,
                ..Default::default()
            };
            let settings = Settings::load(state.config.as_deref(), overrides)?;
            init_logging(settings.log_format == "json");
            let registry = open(&settings, false).await?;
            let started = std::time::Instant::now();
            let result = portcullis_server::gc::collect_garbage(&registry, &settings.gc()).await;
            portcullis_server::gc::audit_gc_run(&registry, &result, started).await;
            let report = result?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&report)?),
                Format::Text => println!(
                    "removed {} untagged manifests, {} blob links, {} blobs, {} orphan files, {} stale uploads, \
                     {} scans, {} SBOMs, {} layer facts",
                    report.manifests,
                    report.links,
                    report.blobs,
                    report.orphan_files,
                    report.uploads,
                    report.scans,
                    report.sboms,
                    report.layer_facts
                ),
            }
        }
        Command::User { state, command } => {
            let meta = open_meta(&offline_settings(state)?).await?;
            match command {
                UserCommand::Create {
                    name,
                    admin,
                    password_stdin,
                } => manage::user_create(&meta, &name, admin, password_stdin).await?,
                UserCommand::Passwd { name, password_stdin } => {
                    manage::user_password(&meta, &name, password_stdin).await?
                }
                UserCommand::List => manage::user_list(&meta).await?,
                UserCommand::Delete { name } => manage::user_delete(&meta, &name).await?,
            }
        }
        Command::Token { state, remote, command } => {
            if state.config.is_none() && state.data.is_none() && state.database.is_none() {
                std::process::exit(remote::token(remote, command).await);
            }
            if let Err(e) = remote.offline() {
                eprintln!("Error: {e}");
                std::process::exit(2);
            }
            manage::token(&open_meta(&offline_settings(state)?).await?, command).await?
        }
        Command::Audit { state, command } => {
            let meta = open_meta_to_read_audit(&offline_settings(state)?).await?;
            match command {
                AuditCommand::Verify { anchor } => {
                    if !manage::audit_verify(&meta, anchor.as_deref()).await? {
                        std::process::exit(1);
                    }
                }
                AuditCommand::Anchor => println!("{}", serde_json::to_string(&meta.audit_anchor().await?)?),
                AuditCommand::Export { after } => manage::audit_export(&meta, after).await?,
            }
        }
        Command::Key {
            state,
            command: KeyCommand::Rotate,
        } => {
            let settings = offline_settings(state)?;
            manage::key_rotate(&settings.key_dir(), Duration::from_secs(settings.token_ttl_secs))?;
        }
        Command::Scan { state, args } => {
            let settings = offline_settings(state)?;
            match scan::run(&settings, args).await {
                Ok(true) => {}
                Ok(false) => std::process::exit(1),
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    std::process::exit(2);
                }
            }
        }
        Command::Sign(args) => {
            if let Err(e) = signature::sign(args).await {
                eprintln!("Error: {e:#}");
                std::process::exit(2);
            }
        }
        Command::Verify(args) => match signature::verify(args).await {
            Ok(true) => {}
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("Error: {e:#}");
                std::process::exit(2);
            }
        },
        Command::Attest(args) => {
            if let Err(e) = attestation::attest(args).await {
                eprintln!("Error: {e:#}");
                std::process::exit(2);
            }
        }
        Command::VerifyAttestation(args) => match attestation::verify(args).await {
            Ok(true) => {}
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("Error: {e:#}");
                std::process::exit(2);
            }
        },
        Command::Remote(command) => std::process::exit(remote::run(command).await),
        Command::Db { state, command } => {
            let settings = offline_settings(state)?;
            match command {
                DbCommand::Import { paths, replace, format } => db::import(&settings, &paths, replace, format)?,
                DbCommand::Export { file, format } => db::export(&settings, &file, format)?,
                DbCommand::Push(args) => {
                    if let Err(e) = db::push(&settings, args).await {
                        eprintln!("Error: {e:#}");
                        std::process::exit(2);
                    }
                }
                DbCommand::Pull(args) => match db::pull(&settings, args).await {
                    Ok(()) => {}
                    Err(e) => {
                        eprintln!("Error: {e:#}");
                        let refused = matches!(
                            e.downcast_ref::<portcullis_vulndb::VulnDbError>(),
                            Some(portcullis_vulndb::VulnDbError::PullRefused { .. })
                        );
                        std::process::exit(if refused { 1 } else { 2 });
                    }
                },
                DbCommand::Status { format } => db::status(&settings, format)?,
                DbCommand::Update { format } => {
                    if !db::update(&settings, format).await? {
                        std::process::exit(1);
                    }
                }
            }
        }
    }
    Ok(())
}
