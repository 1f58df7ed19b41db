//! Managing a running server over its management API (`/api/v1/`): `login`
//! and `logout` (credentials kept where `skopeo login` keeps them, see
//! [`credentials`]), and one module per group of resources. Exit codes are
//! the contract: 0 done, 1 refused by the server (HTTP 401, 403, 404, 409,
//! 422, 429, or a policy dry run that does not pass), 2 an error (the
//! server unreachable, bad input, 400, 5xx).

mod client;
pub(crate) mod credentials;
mod identity;
mod login;
mod policy;
mod repo;
mod webhook;

use clap::{Args, Subcommand};

pub use client::{Client, Refused};
pub use identity::TokenCommand;

/// How output is printed: `json` prints the server's JSON as it answered.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Which server, and how to print; taken by every online command.
#[derive(Args, Clone)]
pub struct Remote {
    /// The server's URL [default: PORTCULLIS_SERVER, else the server of the last `portcullis login`].
    #[arg(long, value_name = "URL", global = true)]
    pub server: Option<String>,
    /// `text` for people, `json` for scripts (the server's JSON).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,
}

impl Remote {
    /// Checks that nothing asks for a server when a command runs offline.
    pub fn offline(&self) -> anyhow::Result<()> {
        if self.server.is_some() {
            anyhow::bail!("--server talks to a running server; --data, --database and --config work offline");
        }
        if self.format == Format::Json {
            anyhow::bail!("offline token commands print text; --format json is for a running server");
        }
        Ok(())
    }
}

/// The commands that talk to a running server.
#[derive(Subcommand)]
pub enum RemoteCommand {
    /// Log in to a running server; the credential (an API token made for
    /// this login) is kept as `skopeo login` keeps it: the containers auth
    /// file (REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
    /// else ~/.config/containers/auth.json).
    Login(login::LoginArgs),
    /// Forget the credential of a server (revoking the token `login` made).
    Logout(login::LogoutArgs),
    /// Organizations.
    Org {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: identity::OrgCommand,
    },
    /// Teams of an organization and their members.
    Team {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: identity::TeamCommand,
    },
    /// Give a team or an account a role (read, write, admin) on a
    /// namespace or one repository: `grant acme/app write --team ci`.
    Grant {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        args: identity::GrantArgs,
    },
    /// Robot (service) accounts of a namespace, `NS+NAME`, for machines.
    Robot {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: identity::RobotCommand,
    },
    /// Promotion policies of a source repository.
    Policy {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Webhooks of a repository or a namespace, and their deliveries.
    Webhook {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Repositories.
    Repo {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: repo::RepoCommand,
    },
}

/// Runs an online command; its exit code.
pub async fn run(command: RemoteCommand) -> i32 {
    let result = match command {
        RemoteCommand::Login(args) => login::login(args).await,
        RemoteCommand::Logout(args) => login::logout(args).await,
        RemoteCommand::Org { remote, command } => with_client(&remote, |c| identity::org(c, command)).await,
        RemoteCommand::Team { remote, command } => with_client(&remote, |c| identity::team(c, command)).await,
        RemoteCommand::Grant { remote, args } => with_client(&remote, |c| identity::grant(c, args)).await,
        RemoteCommand::Robot { remote, command } => with_client(&remote, |c| identity::robot(c, command)).await,
        RemoteCommand::Policy { remote, command } => with_client(&remote, |c| policy::run(c, command)).await,
        RemoteCommand::Webhook { remote, command } => with_client(&remote, |c| webhook::run(c, command)).await,
        RemoteCommand::Repo { remote, command } => with_client(&remote, |c| repo::run(c, command)).await,
    };
    exit_code(result)
}

/// `portcullis token …` against a running server.
pub async fn token(remote: Remote, command: TokenCommand) -> i32 {
    exit_code(with_client(&remote, |c| identity::token(c, command)).await)
}

async fn with_client<F, Fut>(remote: &Remote, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let client = Client::for_remote(remote)?;
    f(client).await
}

/// 0, 1 for a refusal (the message was printed), 2 for an error.
fn exit_code(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<Refused>().is_some() {
                1
            } else {
                2
            }
        }
    }
}
