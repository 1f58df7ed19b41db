//! Organizations, teams, grants, robot (service) accounts and API tokens.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{cell, seg, Client};

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization; you become its owner.
    Create { name: String },
    /// An organization and its teams.
    Show { name: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team in an organization.
    Create { org: String, team: String },
    /// Add a member (a user or a robot account) to a team.
    Add { org: String, team: String, account: String },
    /// Remove a member from a team.
    Remove { org: String, team: String, account: String },
    /// The organization's teams and their members.
    List { org: String },
}

#[derive(Args)]
pub struct GrantArgs {
    /// A namespace (`acme`) or one repository (`acme/app`).
    target: String,
    /// read (pull), write (pull, push) or admin.
    role: String,
    /// A team of the namespace's organization.
    #[arg(long, conflicts_with = "account", required_unless_present = "account")]
    team: Option<String>,
    /// A user or robot account.
    #[arg(long)]
    account: Option<String>,
}

#[derive(Subcommand)]
pub enum RobotCommand {
    /// Create a robot account NS+NAME; give it tokens with `token create NS+NAME`.
    Create { namespace: String, name: String },
    /// The namespace's robot accounts.
    List { namespace: String },
    /// Delete a robot account with its tokens and grants.
    Delete { namespace: String, name: String },
    /// Give a robot account a server-side signing key (ECDSA P-256, made
    /// and sealed by the server; only its public half leaves it), which
    /// policies created with `--sign-as NS+NAME` sign with. Prints its
    /// public half (PEM), as `cosign.pub` is written.
    SigningKey { namespace: String, name: String },
}

/// `portcullis token …`: online unless --data, --database or --config is given.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an account; printed once.
    Create {
        account: String,
        #[arg(long)]
        name: String,
        /// What it may do: `acme/*:pull,push`, `acme/app:pull`, `*:pull`. Repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    /// An account's tokens [online default: the logged-in account].
    List { account: Option<String> },
    /// Revoke a token by its id.
    Revoke {
        id: String,
        /// Online: the token's account [default: the logged-in account].
        #[arg(long)]
        account: Option<String>,
    },
}

fn account_text(v: &Value) -> String {
    format!(
        "{}\t{}{}",
        cell(&v["name"]),
        cell(&v["kind"]),
        if v["admin"] == json!(true) { "\tadmin" } else { "" }
    )
}

pub async fn org(c: Client, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Create { name } => {
            let v = c.post("/api/v1/orgs", json!({"name": name})).await?;
            c.print(&v, |v| format!("created organization {}", cell(&v["name"])))
        }
        OrgCommand::Show { name } => {
            let v = c.get(&format!("/api/v1/orgs/{}", seg(&name))).await?;
            c.print(&v, |v| teams_text(&v["teams"]))
        }
    }
}

fn teams_text(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}\t{}\n", cell(&t["name"]), cell(&t["members"])))
        .collect()
}

pub async fn team(c: Client, command: TeamCommand) -> anyhow::Result<()> {
    match command {
        TeamCommand::Create { org, team } => {
            let v = c
                .post(&format!("/api/v1/orgs/{}/teams", seg(&org)), json!({"name": team}))
                .await?;
            c.print(&v, |v| format!("created team {}/{}", cell(&v["org"]), cell(&v["name"])))
        }
        TeamCommand::Add { org, team, account } => {
            let path = format!(
                "/api/v1/orgs/{}/teams/{}/members/{}",
                seg(&org),
                seg(&team),
                seg(&account)
            );
            let v = c.put(&path, None).await?;
            c.print(&v, |v| {
                format!(
                    "added {} to {}/{}",
                    cell(&v["member"]),
                    cell(&v["org"]),
                    cell(&v["team"])
                )
            })
        }
        TeamCommand::Remove { org, team, account } => {
            let path = format!(
                "/api/v1/orgs/{}/teams/{}/members/{}",
                seg(&org),
                seg(&team),
                seg(&account)
            );
            let v = c.delete(&path).await?;
            c.print(&v, |_| format!("removed {account} from {org}/{team}"))
        }
        TeamCommand::List { org } => {
            let v = c.get(&format!("/api/v1/orgs/{}/teams", seg(&org))).await?;
            c.print(&v, teams_text)
        }
    }
}

pub async fn grant(c: Client, a: GrantArgs) -> anyhow::Result<()> {
    let target = a.target.trim_matches('/');
    let (ns, repository) = match target.split_once('/') {
        Some((ns, _)) => (ns, Some(target)),
        None => (target, None),
    };
    if ns.is_empty() {
        bail!("name a namespace or a repository to grant on");
    }
    let mut body = json!({"role": a.role});
    if let Some(r) = repository {
        body["repository"] = json!(r);
    }
    match (&a.team, &a.account) {
        (Some(t), None) => body["team"] = json!(t),
        (None, Some(acc)) => body["account"] = json!(acc),
        _ => bail!("give --team or --account"),
    }
    let v = c.post(&format!("/api/v1/namespaces/{}/grants", seg(ns)), body).await?;
    c.print(&v, |v| {
        let who = match v["team"].as_str() {
            Some(t) => format!("team {ns}/{t}"),
            None => cell(&v["account"]),
        };
        let on = v["repository"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("{ns} (namespace)"));
        format!(
            "granted {} on {on} to {who} (grant {})",
            cell(&v["role"]),
            cell(&v["id"])
        )
    })
}

pub async fn robot(c: Client, command: RobotCommand) -> anyhow::Result<()> {
    match command {
        RobotCommand::Create { namespace, name } => {
            // `acme+ci` or `ci`: the API takes the short name.
            let short = name.strip_prefix(&format!("{namespace}+")).unwrap_or(&name);
            let v = c
                .post(
                    &format!("/api/v1/namespaces/{}/service-accounts", seg(&namespace)),
                    json!({"name": short}),
                )
                .await?;
            c.print(&v, |v| format!("created robot account {}", cell(&v["name"])))
        }
        RobotCommand::List { namespace } => {
            let v = c
                .get(&format!("/api/v1/namespaces/{}/service-accounts", seg(&namespace)))
                .await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| account_text(a) + "\n")
                    .collect()
            })
        }
        RobotCommand::Delete { namespace, name } => {
            let path = format!("/api/v1/namespaces/{}/service-accounts/{}", seg(&namespace), seg(&name));
            let v = c.delete(&path).await?;
            c.print(&v, |_| format!("deleted robot account {name}"))
        }
        RobotCommand::SigningKey { namespace, name } => {
            let short = name.strip_prefix(&format!("{namespace}+")).unwrap_or(&name);
            let path = format!("/api/v1/accounts/{}/signing-key", seg(&format!("{namespace}+{short}")));
            let v = c.post(&path, Value::Null).await?;
            // Text: the PEM alone, for `portcullis robot signing-key acme ci > ci.pub`.
            c.print(&v, |v| cell(&v["pem"]))
        }
    }
}

/// The logged-in account, for commands about "my" tokens.
fn me(c: &Client, given: Option<String>) -> anyhow::Result<String> {
    given
        .or_else(|| c.secret.as_ref().map(|s| s.user.clone()))
        .ok_or_else(|| anyhow!("name the account (not logged in to {})", c.host))
}

fn token_state(t: &Value) -> &'static str {
    if !t["revoked_at"].is_null() {
        "revoked"
    } else {
        "active"
    }
}

pub async fn token(c: Client, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            account,
            name,
            scopes,
            days,
        } => {
            let body = json!({"name": name, "scopes": scopes, "expires_in_days": days});
            let v = c
                .post(&format!("/api/v1/accounts/{}/tokens", seg(&account)), body)
                .await?;
            // Text: the token alone, for `TOKEN=$(portcullis token create …)`.
            c.print(&v, |v| cell(&v["token"]))
        }
        TokenCommand::List { account } => {
            let account = me(&c, account)?;
            let v = c.get(&format!("/api/v1/accounts/{}/tokens", seg(&account))).await?;
            c.print(&v, |v| {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let scopes: Vec<String> = t["scopes"].as_array().into_iter().flatten().map(cell).collect();
                        format!(
                            "{}\t{}\t{}\t{}\n",
                            cell(&t["id"]),
                            cell(&t["name"]),
                            scopes.join(" "),
                            token_state(t)
                        )
                    })
                    .collect()
            })
        }
        TokenCommand::Revoke { id, account } => {
            let account = me(&c, account)?;
            let v = c
                .delete(&format!("/api/v1/accounts/{}/tokens/{}", seg(&account), seg(&id)))
                .await?;
            c.print(&v, |_| format!("revoked token {id} of {account}"))
        }
    }
}
