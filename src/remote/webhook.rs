//! Webhooks of a repository or a namespace, and their delivery logs.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{cell, seg, Client};

/// Whose hooks: one repository's or one namespace's.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct Scope {
    /// A repository (`acme/app`).
    #[arg(long)]
    repository: Option<String>,
    /// A namespace (`acme`): its hooks hear of every repository in it.
    #[arg(long)]
    namespace: Option<String>,
}

impl Scope {
    fn path(&self) -> String {
        match (&self.repository, &self.namespace) {
            (Some(r), _) => format!("/api/v1/repositories/{}/webhooks", seg(r.trim_matches('/'))),
            (_, Some(ns)) => format!("/api/v1/namespaces/{}/webhooks", seg(ns)),
            _ => unreachable!("clap requires one"),
        }
    }
}

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook; deliveries are signed with its secret (HMAC-SHA-256).
    Create {
        #[command(flatten)]
        scope: Scope,
        /// Where events are POSTed (http:// or https://).
        #[arg(long)]
        url: String,
        /// An event type (TAG_PUSH, MANIFEST_PUSH, SCAN_COMPLETED, PROMOTION,
        /// IMAGE_SIGNED, …). Repeatable, or comma-separated.
        #[arg(long = "event", required = true, value_delimiter = ',')]
        events: Vec<String>,
        /// The secret (16 to 256 bytes) read from standard input [default:
        /// PORTCULLIS_WEBHOOK_SECRET, else one is generated and printed once].
        #[arg(long)]
        secret_stdin: bool,
        /// An extra header sent with each delivery, `NAME=VALUE`. Repeatable.
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// The webhooks of a repository or a namespace.
    List {
        #[command(flatten)]
        scope: Scope,
    },
    /// A webhook's deliveries, newest first, with each attempt.
    Deliveries {
        id: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn hook_text(h: &Value) -> String {
    let scope = h["repository"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}/ (namespace)", cell(&h["namespace"])));
    format!(
        "{}\t{scope}\t{}\t{}\t{}",
        cell(&h["id"]),
        cell(&h["url"]),
        cell(&h["events"]),
        if h["enabled"] == json!(false) {
            "disabled"
        } else {
            "enabled"
        }
    )
}

/// A random secret: 32 bytes from the system's generator, as hex.
fn generated_secret() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

pub async fn run(c: Client, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Create {
            scope,
            url,
            events,
            secret_stdin,
            headers,
            disabled,
        } => {
            let (secret, generated) = if secret_stdin {
                let s = std::io::read_to_string(std::io::stdin()).context("reading standard input")?;
                (s.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                match std::env::var("PORTCULLIS_WEBHOOK_SECRET") {
                    Ok(s) if !s.is_empty() => (s, false),
                    _ => (generated_secret(), true),
                }
            };
            let mut extra = serde_json::Map::new();
            for h in &headers {
                let Some((k, v)) = h.split_once('=') else {
                    bail!("--header {h:?}: give NAME=VALUE");
                };
                extra.insert(k.trim().to_string(), json!(v));
            }
            let mut body = json!({"url": url, "events": events, "secret": secret, "enabled": !disabled});
            if !extra.is_empty() {
                body["headers"] = Value::Object(extra);
            }
            let v = c.post(&scope.path(), body).await?;
            if generated {
                // Shown once: the server never returns a hook's secret.
                eprintln!("secret (shown once; receivers verify X-Portcullis-Signature with it): {secret}");
            }
            c.print(&v, |v| format!("created webhook {}", hook_text(v)))
        }
        WebhookCommand::List { scope } => {
            let v = c.get(&scope.path()).await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|h| hook_text(h) + "\n")
                    .collect()
            })
        }
        WebhookCommand::Deliveries { id, limit } => {
            let v = c
                .get(&format!("/api/v1/webhooks/{}/deliveries?limit={limit}", seg(&id)))
                .await?;
            c.print(&v, |v| {
                let mut out = String::new();
                for d in v["deliveries"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{} attempt(s)\n",
                        cell(&d["id"]),
                        cell(&d["type"]),
                        cell(&d["status"]),
                        d["attempts"].as_array().map_or(0, Vec::len)
                    ));
                    for a in d["attempts"].as_array().into_iter().flatten() {
                        let result = match a["status_code"].as_u64() {
                            Some(code) => format!("HTTP {code}"),
                            None => cell(&a["error"]),
                        };
                        out.push_str(&format!(
                            "  #{}\t{result}\t{} ms\n",
                            cell(&a["attempt"]),
                            cell(&a["latency_ms"])
                        ));
                    }
                }
                if out.is_empty() {
                    "no deliveries".into()
                } else {
                    out
                }
            })
        }
    }
}
