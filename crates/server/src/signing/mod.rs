//! Server-side signing: a service account's key, sealed at rest with the
//! key-encryption key, signs an image in cosign's tag form (the same
//! format `cosign sign --key` writes), right after a promotion commits.
//! The signature is a push into the repository: a payload blob, an empty
//! config and the `sha256-<hex>.sig` manifest (existing signatures kept),
//! audited as `signature` with the key id and announced as `IMAGE_SIGNED`.
//!
//! [`attestations`]: the in-toto statements the registry signs itself,
//! with its own key (after each scan and each promotion).

pub(crate) mod attestations;

use bytes::Bytes;
use portcullis_meta::{AuditEvent, NewManifest};
use portcullis_oci::{media_type, Digest, Manifest, Reference};
use portcullis_sign::{
    candidates, payload, read_private_key, signature_manifest_adding, signature_tag, PublicKey, SigningKey,
};
use serde_json::json;

use crate::access::{Caller, Need};
use crate::pull::Signed;
use crate::webhooks::About;
use crate::{keys, Registry, RegistryError};

/// Cosign key files decrypted at once (each holds up to 32 MiB for scrypt).
pub(crate) const KEY_IMPORTS_AT_ONCE: usize = 2;

impl Registry {
    /// Stores small bytes as a blob of `repo`, through the same verified
    /// upload path clients use.
    pub(crate) async fn put_small_blob(&self, repo: &str, bytes: &[u8]) -> Result<(Digest, usize), RegistryError> {
        let digest = Digest::sha256_of(bytes);
        let id = self.store.start_upload(portcullis_oci::Algorithm::Sha256).await?;
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(bytes))]);
        self.store.append(id, None, body).await?;
        let verified = self.store.verify_upload(id, &digest).await?;
        self.meta
            .insert_blob(repo, &digest, bytes.len() as u64, || self.store.publish(verified))
            .await?;
        Ok((digest, bytes.len()))
    }

    /// This registry's host as clients name it (from `public_url`): what
    /// its signatures and attestations name images under.
    pub(crate) fn public_host(&self) -> &str {
        self.webhooks.public_url.split_once("://").map_or("", |(_, h)| h)
    }

    /// Creates `account`'s server-side key, sealed for it.
    pub(crate) fn new_sealed_key(&self, account: &str) -> Result<(SigningKey, String), RegistryError> {
        let (key, pkcs8) = SigningKey::generate().map_err(|e| RegistryError::Internal(e.to_string()))?;
        Ok((key, keys::seal_signing_key(&self.kek, account, &pkcs8)))
    }

    /// Opens a cosign key file with its password and seals the key for
    /// `account` under this server's key-encryption key. scrypt is slow and
    /// takes up to 32 MiB (the cap `portcullis_sign` enforces), so it runs
    /// on the blocking pool, at most [`KEY_IMPORTS_AT_ONCE`] at a time; the
    /// permit moves into the task, so it is held until scrypt ends even if
    /// the request is dropped.
    pub(crate) async fn import_sealed_key(
        &self,
        account: &str,
        pem: String,
        password: String,
    ) -> Result<(SigningKey, String), RegistryError> {
        let permit = self
            .key_imports
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let (key, pkcs8) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read_private_key(&pem, password.as_bytes())
        })
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        Ok((key, keys::seal_signing_key(&self.kek, account, &pkcs8)))
    }

    /// `Ok` when `caller` may have images signed with `account`'s key: a
    /// signing key serves only those who administer its service account's
    /// namespace. Asked when a policy with `sign_as` is saved and again
    /// before each signature it makes, since owners change. `Denied` or
    /// `Invalid` say why not; `Internal` is the database failing.
    pub(crate) async fn may_sign_as(&self, caller: &Caller, account: &str) -> Result<(), RegistryError> {
        let a = self
            .meta
            .account(account)
            .await?
            .filter(|a| a.kind == "service")
            .ok_or_else(|| RegistryError::Invalid(format!("sign_as: {account} is not a service account")))?;
        let namespace = a.owner.clone().unwrap_or_default();
        match self
            .authorize(caller, Need::Namespace(&namespace, portcullis_auth::Role::Admin))
            .await
        {
            Ok(()) => Ok(()),
            Err(e @ RegistryError::Internal(_)) => Err(e),
            Err(_) => Err(RegistryError::Denied(format!(
                "sign_as: {} does not administer {account}",
                caller.actor(None).name
            ))),
        }
    }

    /// Whether `digest` in `repo` carries a signature that verifies under
    /// `account`'s server-side signing key; `Err` with why it can't (no
    /// key, or its public half revoked: signing again would not help).
    pub(crate) async fn signed_by_server_key(
        &self,
        repo: &str,
        digest: &str,
        account: &str,
    ) -> Result<Result<Option<String>, String>, RegistryError> {
        let Some((key_id, _)) = self.meta.signing_key(account).await? else {
            return Ok(Err(format!("{account} has no server-side signing key")));
        };
        let current = self.meta.trusted_keys(&[], &[account.to_string()]).await?;
        let Some(key) = current
            .iter()
            .find(|(id, _, _)| *id == key_id)
            .and_then(|(_, _, pem)| PublicKey::from_pem(pem).ok())
        else {
            return Ok(Err(format!("{account}'s signing key {key_id} is revoked")));
        };
        let image: Digest = digest.parse()?;
        Ok(Ok(match self.signature_verdict(repo, &image, &[key], true).await? {
            Signed::By(id) => Some(id),
            Signed::Unsigned | Signed::Unverified => None,
        }))
    }

    /// `account`'s server-side signing key, opened: (key id, key).
    pub(crate) async fn open_signing_key(&self, account: &str) -> Result<(String, SigningKey), RegistryError> {
        let (key_id, sealed) = self
            .meta
            .signing_key(account)
            .await?
            .ok_or_else(|| RegistryError::Invalid(format!("{account} has no server-side signing key")))?;
        let opened = keys::unseal_signing_key(&self.kek, account, &sealed).ok_or_else(|| {
            RegistryError::Internal(format!(
                "{account}'s signing key does not open with this server's key-encryption key for this account"
            ))
        })?;
        if opened.legacy {
            // Bind a key sealed before accounts were bound (see `keys`).
            let resealed = keys::seal_signing_key(&self.kek, account, &opened.pkcs8);
            let event = AuditEvent::ok(account, "signing_key.reseal").detail(format!("{account} {key_id}"));
            self.meta
                .reseal_signing_key(account, &sealed, &resealed, &event)
                .await?;
        }
        let key = SigningKey::from_pkcs8(&opened.pkcs8).map_err(|e| RegistryError::Internal(e.to_string()))?;
        Ok((key_id, key))
    }

    /// Signs `digest` in `repo` with `account`'s server-side key.
    pub(crate) async fn sign_image(&self, repo: &str, digest: &str, account: &str) -> Result<String, RegistryError> {
        let (key_id, key) = self.open_signing_key(account).await?;
        let image: Digest = digest.parse()?;
        let body = payload(&format!("{}/{repo}", self.public_host()), &image);
        let signature = key.sign(&body).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let (p, size) = self.put_small_blob(repo, &body).await?;
        let (config, config_size) = self.put_small_blob(repo, b"{}").await?;
        // Signatures already there stay: a second signer adds a layer.
        let tag = signature_tag(&image);
        let mut kept = Vec::new();
        if let Some(existing) = self.meta.get_manifest(repo, &Reference::Tag(tag.clone())).await? {
            for mut c in candidates(&existing.content) {
                if let Some(n) = self.meta.blob_in_repo(repo, &c.payload).await? {
                    c.size = n;
                    kept.push(c);
                }
            }
        }
        let manifest = signature_manifest_adding(kept, &config, config_size, (p, size, signature));
        let parsed = Manifest::parse(&manifest, Some(media_type::OCI_MANIFEST))?;
        let manifest_digest = Digest::sha256_of(&manifest);
        let mut event = AuditEvent::ok(account, "signature")
            .repository(repo)
            .digest(digest)
            .detail(format!("key {key_id}"));
        let actor = crate::access::Actor {
            name: account.to_string(),
            ..Default::default()
        };
        let about = About {
            repository: repo,
            digest: Some(digest),
            tag: Some(&tag),
            media_type: None,
        };
        event.outbox = vec![self.event(
            "IMAGE_SIGNED",
            Some(&actor),
            about,
            json!({"signature": {"key_id": key_id, "signed_by": account}}),
        )];
        self.meta
            .put_manifest(
                NewManifest {
                    repo,
                    digest: &manifest_digest,
                    media_type: media_type::OCI_MANIFEST,
                    artifact_type: None,
                    subject: None,
                    annotations: None,
                    content: &manifest,
                    blobs: parsed.required_blobs(),
                    children: Vec::new(),
                    tags: vec![tag.as_str()],
                },
                &event,
            )
            .await?;
        self.invalidate(repo);
        self.dispatcher.wake.notify_one();
        tracing::info!(
            log = "signature",
            event = "IMAGE_SIGNED",
            repository = %repo,
            %digest,
            signed_by = %account,
            key_id = %key_id,
            signature_manifest = %manifest_digest,
            "image signed with a server-side key"
        );
        Ok(key_id)
    }
}
