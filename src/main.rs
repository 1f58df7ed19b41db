//! `portcullis`: the command line, thin over the crates.

mod settings;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis_meta::Meta;
use portcullis_server::{app, collect_garbage_logged, Registry};
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
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (blobs, uploads, SQLite database) [default: ./portcullis-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Metadata database URL (sqlite://PATH or postgres://…) [default: SQLite in the data directory].
    #[arg(long, value_name = "URL")]
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
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open(settings: &Settings) -> anyhow::Result<Arc<Registry>> {
    let store = BlobStore::open(&settings.data).with_context(|| format!("opening {}", settings.data.display()))?;
    let meta = Meta::connect(&settings.database_url())
        .await
        .context("opening the metadata database")?;
    Ok(Registry::new(
        meta,
        store,
        Duration::from_millis(settings.manifest_cache_ttl_ms),
    ))
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
            let registry = open(&settings).await?;
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
            portcullis_server::serve(listener, app(registry.clone()), settings.tls(), shutdown_signal()).await?;
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
            let registry = open(&settings).await?;
            let report = portcullis_server::gc::collect_garbage(&registry, &settings.gc()).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&report)?),
                Format::Text => println!(
                    "removed {} untagged manifests, {} blob links, {} blobs, {} orphan files, {} stale uploads",
                    report.manifests, report.links, report.blobs, report.orphan_files, report.uploads
                ),
            }
        }
    }
    Ok(())
}
