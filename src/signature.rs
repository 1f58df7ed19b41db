//! `portcullis sign` and `portcullis verify`: cosign-format signatures on
//! images in any registry, for CI jobs and deploy scripts. Exit codes are
//! the contract: 0 signed / verified, 1 not verified, 2 an error.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use portcullis_registry_client::{explain, Access, ClientError, ImageRef, RegistryClient, SignatureForm};
use portcullis_sign::{read_private_key, PublicKey, SigningKey};
use serde::Serialize;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// `sha256-<hex>.sig` tag with simple-signing payloads (cosign 2).
    Tag,
    /// A sigstore bundle attached as an OCI 1.1 referrer (cosign 3).
    Bundle,
}

/// How to reach the image's registry, as `portcullis scan` takes it.
#[derive(clap::Args)]
pub struct RegistryArgs {
    /// USER:PASSWORD or USER:TOKEN, for the image's registry (and
    /// --registry) [default: what `portcullis login` or `skopeo login`
    /// keeps for the registry's host].
    #[arg(long, value_name = "USER:PASSWORD", env = "PORTCULLIS_CREDS", hide_env_values = true)]
    creds: Option<String>,
    /// `false` talks plain HTTP to the registry.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
}

impl From<Form> for SignatureForm {
    fn from(f: Form) -> SignatureForm {
        match f {
            Form::Tag => SignatureForm::Tag,
            Form::Bundle => SignatureForm::Bundle,
        }
    }
}

impl From<SignatureForm> for Form {
    fn from(f: SignatureForm) -> Form {
        match f {
            SignatureForm::Tag => Form::Tag,
            SignatureForm::Bundle => Form::Bundle,
        }
    }
}

impl RegistryArgs {
    /// How to reach `host`: `--creds`, else the login kept for it in the
    /// containers auth file (as skopeo reads it), else anonymous.
    pub fn access(&self, host: &str) -> anyhow::Result<Access> {
        let creds = match &self.creds {
            Some(c) => Some(c.clone()),
            None => crate::remote::credentials::kept_creds(host)?,
        };
        Ok(Access {
            creds,
            tls_verify: self.tls_verify,
            ..Default::default()
        })
    }
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    image: String,
    #[command(flatten)]
    with: SigningArgs,
}

/// How `sign` and `attest` sign and write: the key, the form, the
/// registry's access and the output format.
#[derive(clap::Args)]
pub struct SigningArgs {
    /// A cosign key file (`cosign.key`; password from COSIGN_PASSWORD or a
    /// prompt) or a PKCS#8 PEM private key.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// Which of cosign's two forms to write: the tag (`.sig`, `.att`) or a
    /// sigstore bundle referrer.
    #[arg(long, value_enum, default_value = "tag")]
    pub(crate) form: Form,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: OutputFormat,
}

#[derive(clap::Args)]
#[command(
    group = clap::ArgGroup::new("trust").required(true).args(["key", "team"]),
    override_usage = "portcullis verify --key <FILE> [--key <FILE>]... [--creds <USER:PASSWORD>] \
                      [--tls-verify=false] [--format json] <IMAGE>\n       \
                      portcullis verify --team <ORG/TEAM> [--registry <URL>] [--creds <USER:PASSWORD>] \
                      [--tls-verify=false] [--format json] <IMAGE>"
)]
pub struct VerifyArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    image: String,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    access: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// Whose keys `verify` and `verify-attestation` trust. The commands make
/// `--key` or `--team` required (the group `trust`).
#[derive(clap::Args)]
pub struct TrustArgs {
    /// A PEM public key (`cosign.pub`). Repeatable: any of them may have
    /// signed. This or --team is required.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// Trust the current keys of this Portcullis team's members. This or
    /// --key is required.
    #[arg(long, value_name = "ORG/TEAM")]
    team: Option<String>,
    /// Optional: the Portcullis server that knows --team,
    /// http(s)://HOST[:PORT]. Default: the image's registry (http:// with
    /// --tls-verify=false).
    #[arg(long, value_name = "URL")]
    registry: Option<String>,
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("COSIGN_PASSWORD") {
        return Ok(p);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return rpassword::prompt_password("Enter password for private key: ").context("reading the password");
    }
    bail!("the key is encrypted: set COSIGN_PASSWORD (or run on a terminal to be asked)")
}

#[derive(Serialize)]
pub struct Signed {
    pub image: String,
    pub digest: String,
    pub key_id: String,
    pub form: Form,
    /// Where the signature is: the tag, or the referrer manifest's digest.
    pub signature: String,
}

/// Reads a cosign key file (password from COSIGN_PASSWORD or a prompt)
/// or an unencrypted PKCS#8 PEM private key.
pub fn signing_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let encrypted = pem.contains("ENCRYPTED");
    let secret = if encrypted { password()? } else { String::new() };
    let (key, _) = read_private_key(&pem, secret.as_bytes()).with_context(|| format!("{}", path.display()))?;
    Ok(key)
}

/// Reads PEM public keys (`cosign.pub`).
pub fn public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            PublicKey::from_pem(&pem).with_context(|| format!("{}", path.display()))
        })
        .collect()
}

/// Signs what `image` names with `key`, in `form`: `portcullis sign`
/// and `portcullis db push --key`.
pub async fn sign_image(
    client: &RegistryClient,
    image: &ImageRef,
    key: &SigningKey,
    form: Form,
) -> anyhow::Result<Signed> {
    let created = now_rfc3339()?;
    let name = format!("{}/{}", image.host, image.repository);
    let signed = client.sign(&name, &image.reference, key, form.into(), &created).await?;
    Ok(Signed {
        image: image.to_string(),
        digest: signed.digest.to_string(),
        key_id: key.public.id.clone(),
        form,
        signature: signed.signature,
    })
}

pub async fn sign(args: SignArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.image.parse()?;
    let with = &args.with;
    let key = signing_key(&with.key)?;
    let client = RegistryClient::for_image(&image, &with.registry.access(&image.host)?)?;
    let out = sign_image(&client, &image, &key, with.form).await?;
    match with.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
        OutputFormat::Text => println!(
            "signed {}/{}@{} with key {} ({})",
            image.host, image.repository, out.digest, out.key_id, out.signature
        ),
    }
    Ok(())
}

/// A key trusted for this verification, and whose it is.
pub(crate) struct TrustedKey {
    pub(crate) key: PublicKey,
    pub(crate) account: Option<String>,
}

impl TrustArgs {
    /// The keys trusted: the `--key` PEM files, and the current keys of
    /// the `--team` members, asked of `--registry` (default: the image's
    /// registry, https unless --tls-verify=false).
    pub(crate) async fn keys(&self, image: &ImageRef, access: &Access) -> anyhow::Result<Vec<TrustedKey>> {
        let mut trusted: Vec<TrustedKey> = public_keys(&self.key)?
            .into_iter()
            .map(|key| TrustedKey { key, account: None })
            .collect();
        if let Some(team) = &self.team {
            let scheme = if access.tls_verify { "https" } else { "http" };
            let registry = self
                .registry
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{}", image.host));
            trusted.extend(team_keys(&registry, team, access).await?);
        }
        Ok(trusted)
    }
}

/// Now, in RFC 3339: when a referrer was created.
pub(crate) fn now_rfc3339() -> anyhow::Result<String> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(portcullis_vulndb::rfc3339(now.as_secs()))
}

/// The current keys of a team's members, from the Portcullis server that keeps them.
async fn team_keys(registry: &str, team: &str, access: &Access) -> anyhow::Result<Vec<TrustedKey>> {
    let (org, name) = team.split_once('/').ok_or_else(|| anyhow!("--team must be ORG/TEAM"))?;
    let url = format!("{}/api/v1/orgs/{org}/teams/{name}/keys", registry.trim_end_matches('/'));
    let mut req = reqwest::Client::new().get(&url);
    if let Some((user, pass)) = access.creds.as_deref().and_then(|c| c.split_once(':')) {
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ClientError::http(reqwest::Method::GET, url.clone(), e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("GET {url}: {status}: {}", body.chars().take(300).collect::<String>());
    }
    let list: serde_json::Value = resp.json().await.map_err(|e| anyhow!("GET {url}: {}", explain(e)))?;
    list.as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let pem = k["pem"]
                .as_str()
                .ok_or_else(|| anyhow!("GET {url}: a key without pem"))?;
            Ok(TrustedKey {
                key: PublicKey::from_pem(pem)?,
                account: k["account"].as_str().map(String::from),
            })
        })
        .collect()
}

#[derive(Serialize)]
struct Verification {
    image: String,
    digest: String,
    verified: bool,
    /// Signatures that verified, by key.
    signatures: Vec<VerifiedSignature>,
    /// Signatures found that did not verify under the trusted keys.
    unverified: usize,
    trusted_keys: usize,
    reason: Option<String>,
}

#[derive(Serialize, Clone)]
struct VerifiedSignature {
    key_id: String,
    account: Option<String>,
    form: Form,
}

/// Verifies; `Ok(false)` when no signature verifies under the trusted keys.
pub async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let image: ImageRef = args.image.parse()?;
    let access = args.access.access(&image.host)?;
    let trusted = args.trust.keys(&image, &access).await?;
    let keys: Vec<PublicKey> = trusted.iter().map(|t| t.key.clone()).collect();
    let client = RegistryClient::for_image(&image, &access)?;
    let m = client.manifest(&image.reference).await?;
    let verdict = client.verify_signatures(&m.digest, &keys).await?;
    let found: Vec<VerifiedSignature> = verdict
        .verified
        .iter()
        .map(|(key_id, form)| VerifiedSignature {
            key_id: key_id.clone(),
            account: trusted
                .iter()
                .find(|t| &t.key.id == key_id)
                .and_then(|t| t.account.clone()),
            form: (*form).into(),
        })
        .collect();
    let unverified = verdict.unverified;
    let verified = verdict.is_verified();
    let reason = match keys.is_empty() {
        true => Some("no trusted key: the team's members have no current keys".to_string()),
        false => verdict.refusal(keys.len()),
    };
    let out = Verification {
        image: image.to_string(),
        digest: m.digest.to_string(),
        verified,
        signatures: found,
        unverified,
        trusted_keys: keys.len(),
        reason,
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
        OutputFormat::Text if verified => {
            for s in &out.signatures {
                let by = s.account.as_deref().map(|a| format!(" ({a})")).unwrap_or_default();
                let form = if s.form == Form::Tag { "tag" } else { "bundle" };
                println!(
                    "verified {}/{}@{}: signed by key {}{by}, {form} form",
                    image.host, image.repository, out.digest, s.key_id
                );
            }
        }
        OutputFormat::Text => println!(
            "NOT verified {}/{}@{}: {}",
            image.host,
            image.repository,
            out.digest,
            out.reason.as_deref().unwrap_or("")
        ),
    }
    Ok(verified)
}
