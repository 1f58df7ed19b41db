//! `portcullis sign` and `portcullis verify`: cosign-format signatures on
//! images in any registry, for CI jobs and deploy scripts. Exit codes are
//! the contract: 0 signed / verified, 1 not verified, 2 an error.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use portcullis_registry_client::{explain, Access, ClientError, ImageRef, RegistryClient};
use portcullis_sign::{
    bundle_layers, bundle_manifest, bundle_signer, candidates, payload, read_private_key, sign_bundle,
    signature_manifest_adding, signature_tag, signer, PublicKey, BUNDLE_MEDIA_TYPE, EMPTY_CONFIG,
};
use serde::Serialize;

/// Signature payloads and bundles are a few KiB; anything bigger is not one.
const MAX_SIGNATURE_BLOB: usize = 1 << 20;

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
    /// USER:PASSWORD or USER:TOKEN, for the image's registry (and --registry).
    #[arg(long, value_name = "USER:PASSWORD", env = "PORTCULLIS_CREDS", hide_env_values = true)]
    creds: Option<String>,
    /// `false` talks plain HTTP to the registry.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
}

impl RegistryArgs {
    fn access(&self) -> Access {
        Access {
            creds: self.creds.clone(),
            tls_verify: self.tls_verify,
        }
    }
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO[:TAG|@DIGEST].
    image: String,
    /// A cosign key file (`cosign.key`; password from COSIGN_PASSWORD or a
    /// prompt) or a PKCS#8 PEM private key.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Which of cosign's two forms to write.
    #[arg(long, value_enum, default_value = "tag")]
    form: Form,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
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
    #[command(flatten)]
    access: RegistryArgs,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
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
struct Signed<'a> {
    image: String,
    digest: &'a str,
    key_id: &'a str,
    form: Form,
    /// Where the signature is: the tag, or the referrer manifest's digest.
    signature: String,
}

pub async fn sign(args: SignArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.image.parse()?;
    let pem = std::fs::read_to_string(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
    let encrypted = pem.contains("ENCRYPTED");
    let secret = if encrypted { password()? } else { String::new() };
    let (key, _) = read_private_key(&pem, secret.as_bytes()).with_context(|| format!("{}", args.key.display()))?;
    let client = RegistryClient::for_image(&image, &args.registry.access())?;
    // The empty config both forms need goes first, so the credentials in
    // hand carry push; then a HEAD names the digest: a registry whose pull
    // rules refuse the unsigned image its body still lets a pusher sign it.
    let config = client.push_blob(b"{}").await?;
    let m = client.manifest_head(&image.reference).await?;
    let signature = match args.form {
        Form::Tag => {
            let body = payload(&format!("{}/{}", image.host, image.repository), &m.digest);
            let sig = key.sign(&body)?;
            let p = client.push_blob(&body).await?;
            let tag = signature_tag(&m.digest);
            // Signatures already there stay: another signer adds a layer.
            let kept = match client.manifest_if_exists(&tag).await? {
                Some(existing) => candidates(&existing.bytes),
                None => Vec::new(),
            };
            let manifest = signature_manifest_adding(kept, &config, 2, (p, body.len(), sig));
            client
                .put_manifest(&tag, "application/vnd.oci.image.manifest.v1+json", &manifest)
                .await?;
            tag
        }
        Form::Bundle => {
            let bundle = sign_bundle(&key, &m.digest)?;
            let b = client.push_blob(&bundle).await?;
            let media_type = m
                .media_type
                .clone()
                .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            let created = portcullis_vulndb::rfc3339(now.as_secs());
            let manifest = bundle_manifest((&media_type, &m.digest, m.size), (&b, bundle.len()), &created);
            client
                .put_referrer(&manifest, &m.digest, BUNDLE_MEDIA_TYPE)
                .await?
                .to_string()
        }
    };
    let out = Signed {
        image: image.to_string(),
        digest: m.digest.as_str(),
        key_id: &key.public.id,
        form: args.form,
        signature,
    };
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
        OutputFormat::Text => println!(
            "signed {}/{}@{} with key {} ({})",
            image.host, image.repository, out.digest, out.key_id, out.signature
        ),
    }
    Ok(())
}

/// A key trusted for this verification, and whose it is.
struct TrustedKey {
    key: PublicKey,
    account: Option<String>,
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
    let access = args.access.access();
    let mut trusted = Vec::new();
    for path in &args.key {
        let pem = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let key = PublicKey::from_pem(&pem).with_context(|| format!("{}", path.display()))?;
        trusted.push(TrustedKey { key, account: None });
    }
    if let Some(team) = &args.team {
        // The team's server is the image's registry unless named.
        let scheme = if access.tls_verify { "https" } else { "http" };
        let registry = args
            .registry
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", image.host));
        trusted.extend(team_keys(&registry, team, &access).await?);
    }
    let keys: Vec<PublicKey> = trusted.iter().map(|t| t.key.clone()).collect();
    let client = RegistryClient::for_image(&image, &access)?;
    let m = client.manifest(&image.reference).await?;
    let mut found = Vec::new();
    let mut unverified = 0;
    let mut record = |key: Option<&PublicKey>, form: Form| match key {
        Some(k) => {
            let account = trusted
                .iter()
                .find(|t| t.key.id == k.id)
                .and_then(|t| t.account.clone());
            found.push(VerifiedSignature {
                key_id: k.id.clone(),
                account,
                form,
            })
        }
        None => unverified += 1,
    };
    if let Some(sig) = client.manifest_if_exists(&signature_tag(&m.digest)).await? {
        for c in candidates(&sig.bytes) {
            let body = client.blob(&c.payload, MAX_SIGNATURE_BLOB).await?;
            record(signer(&m.digest, &c, &body, &keys), Form::Tag);
        }
    }
    // Some registries list a bundle under its config's type (the empty
    // one), so the artifact type filters loosely and the layers decide.
    for referrer in client.referrers(&m.digest, None).await? {
        let kind = referrer["artifactType"].as_str().unwrap_or(EMPTY_CONFIG);
        let (Some(digest), true) = (
            referrer["digest"].as_str(),
            kind == BUNDLE_MEDIA_TYPE || kind == EMPTY_CONFIG,
        ) else {
            continue;
        };
        let manifest = client.manifest(digest).await?;
        for (layer, size) in bundle_layers(&manifest.bytes) {
            if size as usize > MAX_SIGNATURE_BLOB {
                record(None, Form::Bundle);
                continue;
            }
            let bundle = client.blob(&layer, MAX_SIGNATURE_BLOB).await?;
            record(bundle_signer(&m.digest, &bundle, &keys), Form::Bundle);
        }
    }
    let verified = !found.is_empty();
    let reason = match (verified, keys.is_empty(), unverified) {
        (true, _, _) => None,
        (false, true, _) => Some("no trusted key: the team's members have no current keys".to_string()),
        (false, false, 0) => Some("the image has no signatures".to_string()),
        (false, false, n) => Some(format!("none of its {n} signature(s) verifies under a trusted key")),
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
