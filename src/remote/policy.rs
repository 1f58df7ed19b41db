//! Promotion policies: create, list, dry run, apply.

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{cell, seg, Client, Refused};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create a policy on a source repository, from flags or a JSON file
    /// (the API's body, as README shows it).
    Create {
        /// The source repository (`acme/app-build`).
        repository: String,
        /// The policy as JSON (`-`: standard input) instead of the flags below.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "tag_template", "rules", "sign_as", "require_provenance", "disabled", "no_copy_referrers"])]
        file: Option<String>,
        /// The repository passing images are copied to.
        #[arg(long, required_unless_present = "file")]
        target: Option<String>,
        /// The target tag: `%n` the source tag, DTR's date variables, `%D` the digest [default: %n].
        #[arg(long)]
        tag_template: Option<String>,
        /// A rule, `FIELD OPERATOR [VALUE[,VALUE…]]` (`vulnerability_critical lte 0`,
        /// `tag matches v*`) or the rule's JSON object. Repeatable; all must pass.
        #[arg(long = "rule", value_name = "RULE")]
        rules: Vec<String>,
        /// A robot account whose server-side key signs each promoted image.
        #[arg(long, value_name = "ACCOUNT")]
        sign_as: Option<String>,
        /// Promote only images with verified SLSA provenance, as JSON:
        /// `{"signed_by": {"accounts": ["acme+ci"]}, "builder_ids": ["https://ci.acme.example/*"],
        /// "source_uris": ["git+https://git.acme.example/acme/app*"]}`.
        #[arg(long, value_name = "JSON")]
        require_provenance: Option<String>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
        /// Do not copy signatures, SBOMs and attestations with the image.
        #[arg(long)]
        no_copy_referrers: bool,
        /// Apply it at once to the tags already in the repository.
        #[arg(long)]
        apply_existing: bool,
    },
    /// The repository's policies.
    List { repository: String },
    /// Evaluate a policy against a tag or digest without promoting: exits 0
    /// when it passes, 1 when it does not (failed, pending, suspended).
    DryRun {
        repository: String,
        id: String,
        #[arg(long, conflicts_with = "digest", required_unless_present = "digest")]
        tag: Option<String>,
        #[arg(long)]
        digest: Option<String>,
    },
    /// Run a policy over every tag of its repository now.
    Apply { repository: String, id: String },
}

/// `FIELD OPERATOR [VALUES]`, or a JSON object, as the API's rule.
fn parse_rule(text: &str) -> anyhow::Result<Value> {
    let text = text.trim();
    if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).with_context(|| format!("--rule {text:?} is not JSON"))?;
        return Ok(v);
    }
    let mut parts = text.splitn(3, char::is_whitespace);
    let (Some(field), Some(operator)) = (parts.next(), parts.next()) else {
        bail!("--rule {text:?}: give FIELD OPERATOR [VALUE,…], such as \"vulnerability_critical lte 0\"");
    };
    let values: Vec<&str> = parts
        .next()
        .map(|v| v.split(',').map(str::trim).filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    Ok(json!({"field": field, "operator": operator, "values": values}))
}

fn policy_text(p: &Value) -> String {
    let rules: Vec<String> = p["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{} {} {}", cell(&r["field"]), cell(&r["operator"]), cell(&r["values"])))
        .collect();
    format!(
        "{}\t{} -> {}:{}\t{}\t{}",
        cell(&p["id"]),
        cell(&p["repository"]),
        cell(&p["target"]),
        cell(&p["tag_template"]),
        if p["enabled"] == json!(false) {
            "disabled"
        } else {
            "enabled"
        },
        if rules.is_empty() {
            "(no rules)".to_string()
        } else {
            rules.join("; ")
        }
    )
}

fn evaluation_text(e: &Value) -> String {
    let mut out = format!(
        "{} {}{}: {}",
        cell(&e["tag"]),
        cell(&e["digest"]),
        e["target_tag"].as_str().map(|t| format!(" -> {t}")).unwrap_or_default(),
        cell(&e["outcome"])
    );
    let detail = &e["detail"];
    // `{"images": [{digest, passed, rules}]}`, or that under `rules` when
    // the promotion was refused or signed.
    let images = detail["images"].as_array().or(detail["rules"]["images"].as_array());
    for image in images.into_iter().flatten() {
        if images.is_some_and(|l| l.len() > 1) {
            out.push_str(&format!("\n  image {}", cell(&image["digest"])));
        }
        for r in image["rules"].as_array().into_iter().flatten() {
            let rule = &r["rule"];
            let verdict = if r["passed"] == json!(true) { "pass" } else { "FAIL" };
            out.push_str(&format!(
                "\n  {verdict}\t{} {} {}\t{}",
                cell(&rule["field"]),
                cell(&rule["operator"]),
                cell(&rule["values"]),
                cell(&r["facts"])
            ));
        }
    }
    for key in ["error", "refused"] {
        if let Some(s) = detail[key].as_str() {
            out.push_str(&format!("\n  {key}: {s}"));
        }
    }
    if let Some(s) = e["detail"]["suspended"].as_str() {
        out.push_str(&format!("\n  suspended: {s}"));
    }
    if let Some(s) = e["detail"]["reason"].as_str() {
        out.push_str(&format!("\n  {s}"));
    }
    out
}

fn repo_path(repository: &str) -> String {
    format!("/api/v1/repositories/{}", seg(repository.trim_matches('/')))
}

pub async fn run(c: Client, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Create {
            repository,
            file,
            target,
            tag_template,
            rules,
            sign_as,
            require_provenance,
            disabled,
            no_copy_referrers,
            apply_existing,
        } => {
            let mut body = match file {
                Some(f) => {
                    let text = if f == "-" {
                        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
                    } else {
                        std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?
                    };
                    let v: Value = serde_json::from_str(&text).with_context(|| format!("{f} is not JSON"))?;
                    if !v.is_object() {
                        bail!("{f}: a policy is a JSON object");
                    }
                    v
                }
                None => {
                    let rules = rules
                        .iter()
                        .map(|r| parse_rule(r))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let mut b = json!({
                        "target": target, "tag_template": tag_template.unwrap_or_else(|| "%n".into()),
                        "enabled": !disabled, "rules": rules, "copy_referrers": !no_copy_referrers,
                    });
                    if let Some(s) = sign_as {
                        b["sign_as"] = json!(s);
                    }
                    if let Some(p) = require_provenance {
                        let v: Value = serde_json::from_str(&p).context("--require-provenance is not JSON")?;
                        if !v.is_object() {
                            bail!("--require-provenance: a JSON object, such as {{\"signed_by\": {{\"accounts\": [\"acme+ci\"]}}}}");
                        }
                        b["require_provenance"] = v;
                    }
                    b
                }
            };
            if apply_existing {
                body["apply_existing"] = json!(true);
            }
            let v = c.post(&format!("{}/policies", repo_path(&repository)), body).await?;
            c.print(&v, |v| {
                let mut out = format!("created policy {}", policy_text(v));
                for e in v["evaluations"].as_array().into_iter().flatten() {
                    out.push('\n');
                    out.push_str(&evaluation_text(e));
                }
                out
            })
        }
        PolicyCommand::List { repository } => {
            let v = c.get(&format!("{}/policies", repo_path(&repository))).await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| policy_text(p) + "\n")
                    .collect()
            })
        }
        PolicyCommand::DryRun {
            repository,
            id,
            tag,
            digest,
        } => {
            let body = match (tag, digest) {
                (Some(t), _) => json!({"tag": t}),
                (None, Some(d)) => json!({"digest": d}),
                (None, None) => bail!("give --tag or --digest"),
            };
            let path = format!("{}/policies/{}/dry-run", repo_path(&repository), seg(&id));
            let v = c.post(&path, body).await?;
            c.print(&v, evaluation_text)?;
            let outcome = v["outcome"].as_str().unwrap_or("");
            if outcome == "passed" || outcome == "promoted" {
                Ok(())
            } else {
                Err(Refused(format!("policy {id} does not pass: {}", cell(&v["outcome"]))).into())
            }
        }
        PolicyCommand::Apply { repository, id } => {
            let path = format!("{}/policies/{}/apply", repo_path(&repository), seg(&id));
            let v = c.call(reqwest::Method::POST, &path, None).await?;
            c.print(&v, |v| {
                let list: Vec<String> = v["evaluations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(evaluation_text)
                    .collect();
                if list.is_empty() {
                    "no tags to evaluate".into()
                } else {
                    list.join("\n")
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rule;
    use serde_json::json;

    #[test]
    fn rules_from_flags() {
        let table = [
            (
                "vulnerability_critical lte 0",
                json!({"field": "vulnerability_critical", "operator": "lte", "values": ["0"]}),
            ),
            (
                "tag one_of 1, 2,3",
                json!({"field": "tag", "operator": "one_of", "values": ["1", "2", "3"]}),
            ),
            (
                "tag matches [0-9]*",
                json!({"field": "tag", "operator": "matches", "values": ["[0-9]*"]}),
            ),
            (
                r#"{"field": "package_name", "operator": "neq", "values": ["openssl"], "version": "< 3"}"#,
                json!({"field": "package_name", "operator": "neq", "values": ["openssl"], "version": "< 3"}),
            ),
        ];
        for (text, want) in table {
            assert_eq!(parse_rule(text).unwrap(), want, "{text}");
        }
        assert!(parse_rule("tag").is_err());
        assert!(parse_rule("{not json").is_err());
    }
}
