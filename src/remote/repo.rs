//! Repository settings.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{cell, seg, Client};

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Show a repository's settings, or change those given.
    Settings {
        /// The repository (`acme/app`).
        repository: String,
        /// public (anonymous pull) or private.
        #[arg(long)]
        visibility: Option<String>,
        /// Scan every image pushed.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        scan_on_push: Option<bool>,
        /// Make every tag immutable.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        immutable_tags: Option<bool>,
        /// Tag patterns whose tags are immutable, comma-separated (`''` clears them).
        #[arg(long, value_name = "GLOB,…")]
        immutable_tag_patterns: Option<String>,
        /// The pull rule as JSON (`{"deny_severity": "high"}`; `{}` clears it).
        #[arg(long, value_name = "JSON")]
        pull_rule: Option<String>,
    },
}

fn settings_text(v: &Value) -> String {
    let mut out = format!(
        "repository\t{}\nvisibility\t{}\nscan_on_push\t{}\nimmutable_tags\t{}\nimmutable_tag_patterns\t{}\npull_rule\t{}",
        cell(&v["name"]),
        cell(&v["visibility"]),
        cell(&v["scan_on_push"]),
        cell(&v["immutable_tags"]),
        cell(&v["immutable_tag_patterns"]),
        v["pull_rule"]
    );
    if let Some(may) = v["caller_may"].as_object() {
        let allowed: Vec<&str> = may
            .iter()
            .filter(|(_, ok)| **ok == json!(true))
            .map(|(k, _)| k.as_str())
            .collect();
        out.push_str(&format!(
            "\nyou may\tpull{}",
            allowed.iter().map(|a| format!(",{a}")).collect::<String>()
        ));
    }
    out
}

pub async fn run(c: Client, command: RepoCommand) -> anyhow::Result<()> {
    match command {
        RepoCommand::Settings {
            repository,
            visibility,
            scan_on_push,
            immutable_tags,
            immutable_tag_patterns,
            pull_rule,
        } => {
            let path = format!("/api/v1/repositories/{}", seg(repository.trim_matches('/')));
            let mut body = serde_json::Map::new();
            if let Some(v) = visibility {
                body.insert("visibility".into(), json!(v));
            }
            if let Some(v) = scan_on_push {
                body.insert("scan_on_push".into(), json!(v));
            }
            if let Some(v) = immutable_tags {
                body.insert("immutable_tags".into(), json!(v));
            }
            if let Some(p) = immutable_tag_patterns {
                let list: Vec<&str> = p.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                body.insert("immutable_tag_patterns".into(), json!(list));
            }
            if let Some(r) = pull_rule {
                let rule: Value = serde_json::from_str(&r).with_context(|| format!("--pull-rule {r:?} is not JSON"))?;
                body.insert("pull_rule".into(), rule);
            }
            let v = if body.is_empty() {
                c.get(&path).await?
            } else {
                c.put(&path, Some(Value::Object(body))).await?
            };
            c.print(&v, settings_text)
        }
    }
}
