//! Attestations the registry makes itself. After each scan, every
//! repository holding the image gets two in-toto statements about it as
//! sigstore bundle referrers (cosign 3's form: no tag is made, so tag lists
//! and the policies that watch tags don't see them), signed by the
//! registry's own key: a CycloneDX SBOM and a cosign `vuln` scan record
//! (scanner, database generation, findings). A rescan replaces the
//! registry's earlier statements of each type. A consumer checks them offline with the published keys
//! (`GET /api/v1/keys/registry`) and `portcullis verify-attestation` or
//! any DSSE verifier, without asking the registry what it found.
//!
//! The keys are sealed in the database with the key-encryption key (never
//! on one replica's disk). The newest signs; a rotation adds one, and every
//! key stays published, so what an older key signed still verifies.

use portcullis_meta::{AuditEvent, NewManifest, RegistryKey};
use portcullis_oci::{media_type, Digest, Manifest, Reference};
use portcullis_sign::attestation::build_statement;
use portcullis_sign::{
    bundle_manifest, sign_statement_bundle, SigningKey, BUNDLE_MEDIA_TYPE, BUNDLE_PREDICATE_ANNOTATION,
};
use serde_json::{json, Value};

use crate::{keys, Registry, RegistryError};

/// What a registry key is sealed for: not an account name (those never
/// start with `@`), so no account's sealed key opens as it or it as one.
const SEAL_LABEL: &str = "@registry";
/// Marks the referrers the registry wrote, so the next scan replaces its
/// own statement of a type and keeps everyone else's.
const MADE_BY_ANNOTATION: &str = "dev.portcullis.attestation.by";
const MADE_BY_REGISTRY: &str = "registry";
pub(crate) const CYCLONEDX: &str = "https://cyclonedx.org/bom";
pub(crate) const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// Portcullis's own predicate: an image passed a promotion policy
/// (`schemas/promotion-v1.schema.json`).
pub(crate) const PROMOTION: &str = "https://portcullis.dev/attestation/promotion/v1";
/// Repositories of one image attested at most after a scan.
const MAX_REPOSITORIES: usize = 16;

/// One promotion, as the registry attests it in the target repository.
pub(crate) struct PromotionRecord<'a> {
    pub policy_id: &'a str,
    pub policy: &'a portcullis_policy::PromotionPolicy,
    /// The evaluation: each image's rules, with the facts each used.
    pub evaluation: &'a Value,
    pub source_repository: &'a str,
    pub source_tag: &'a str,
    pub digest: &'a str,
    pub target_tag: &'a str,
}

/// What one scan found, as the registry attests it.
pub(crate) struct ScanRecord<'a> {
    pub digest: &'a str,
    pub cyclonedx: Value,
    pub findings: Value,
    pub summary: Value,
    pub generation: Option<i64>,
    pub started: String,
    pub finished: String,
}

impl Registry {
    /// The registry's attestation keys, oldest first; the first is made
    /// when there is none.
    pub(crate) async fn registry_keys(&self) -> Result<Vec<RegistryKey>, RegistryError> {
        let _one = self.registry_key_creation.lock().await;
        let keys = self.meta.registry_keys().await?;
        if !keys.is_empty() {
            return Ok(keys);
        }
        self.add_registry_key(AuditEvent::ok("portcullis", "registry_key.create"))
            .await?;
        Ok(self.meta.registry_keys().await?)
    }

    /// A new attestation key, signing from now on (`POST
    /// /api/v1/keys/registry`); the older ones stay published.
    pub(crate) async fn rotate_registry_key(&self, event: AuditEvent) -> Result<RegistryKey, RegistryError> {
        let _one = self.registry_key_creation.lock().await;
        // The first key is made before a second is added.
        if self.meta.registry_keys().await?.is_empty() {
            self.add_registry_key(AuditEvent::ok("portcullis", "registry_key.create"))
                .await?;
        }
        self.add_registry_key(event).await
    }

    async fn add_registry_key(&self, event: AuditEvent) -> Result<RegistryKey, RegistryError> {
        let (key, pkcs8) = SigningKey::generate().map_err(|e| RegistryError::Internal(e.to_string()))?;
        let row = RegistryKey {
            id: key.public.id.clone(),
            sealed: keys::seal_signing_key(&self.kek, SEAL_LABEL, &pkcs8),
            pem: key.public.to_pem(),
            created_at: portcullis_meta::now_ms(),
        };
        let event = event.detail(format!("key {}", row.id));
        self.meta.add_registry_key(&row, &event).await?;
        Ok(row)
    }

    /// The key that signs now, opened.
    async fn registry_signing_key(&self) -> Result<SigningKey, RegistryError> {
        let newest = self
            .registry_keys()
            .await?
            .pop()
            .ok_or_else(|| RegistryError::Internal("no registry key".into()))?;
        let opened = keys::unseal_signing_key(&self.kek, SEAL_LABEL, &newest.sealed)
            .filter(|o| !o.legacy)
            .ok_or_else(|| {
                RegistryError::Internal(format!(
                    "registry key {} does not open with this server's key-encryption key",
                    newest.id
                ))
            })?;
        SigningKey::from_pkcs8(&opened.pkcs8).map_err(|e| RegistryError::Internal(e.to_string()))
    }

    /// Attests a finished scan in each repository holding the image. A
    /// failure is logged, never a failed scan: the result is committed.
    pub(crate) async fn attest_scan(&self, record: ScanRecord<'_>) {
        if let Err(e) = self.try_attest_scan(&record).await {
            tracing::warn!(digest = %record.digest, error = %e, "attesting a scan");
        }
    }

    async fn try_attest_scan(&self, record: &ScanRecord<'_>) -> Result<(), RegistryError> {
        let key = self.registry_signing_key().await?;
        let image: Digest = record.digest.parse()?;
        let vuln = json!({
            "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {
                "uri": format!("pkg:cargo/portcullis@{}", env!("CARGO_PKG_VERSION")),
                "version": env!("CARGO_PKG_VERSION"),
                "db": {
                    "uri": "portcullis-vulndb",
                    "version": record.generation.map(|g| g.to_string()).unwrap_or_default(),
                },
                "result": {"summary": record.summary, "findings": record.findings},
            },
            "metadata": {"scanStartedOn": record.started, "scanFinishedOn": record.finished},
        });
        let repos = self.meta.repositories_with_manifest(record.digest).await?;
        if repos.len() > MAX_REPOSITORIES {
            tracing::warn!(digest = %record.digest, repositories = repos.len(), "attesting the first {MAX_REPOSITORIES} repositories only");
        }
        for repo in repos.iter().take(MAX_REPOSITORIES) {
            let name = format!("{}/{repo}", self.public_host());
            let statements = [
                (
                    CYCLONEDX,
                    build_statement(&name, &image, CYCLONEDX, record.cyclonedx.clone()),
                ),
                (VULN, build_statement(&name, &image, VULN, vuln.clone())),
            ];
            if let Err(e) = self
                .put_registry_attestations(repo, &image, &key, &statements, &record.finished, true)
                .await
            {
                tracing::warn!(digest = %record.digest, %repo, error = %e, "attesting a scan");
            }
        }
        Ok(())
    }

    /// Attests a promotion in its target repository: which policy, its
    /// rules and the facts each used, the database generation, source and
    /// target. Signed by the policy's `sign_as` key when it has one (the
    /// account that vouches for releases), else by the registry's. A
    /// failure is logged, never a failed promotion.
    pub(crate) async fn attest_promotion(&self, record: PromotionRecord<'_>) {
        if let Err(e) = self.try_attest_promotion(&record).await {
            tracing::warn!(digest = %record.digest, policy = %record.policy_id, error = %e, "attesting a promotion");
        }
    }

    async fn try_attest_promotion(&self, record: &PromotionRecord<'_>) -> Result<(), RegistryError> {
        let key = match &record.policy.sign_as {
            Some(account) => self.open_signing_key(account).await?.1,
            None => self.registry_signing_key().await?,
        };
        let image: Digest = record.digest.parse()?;
        let generation = self.meta.scan(record.digest).await?.and_then(|s| s.db_generation);
        let now = crate::scanner::now_rfc3339();
        let predicate = json!({
            "policy": {
                "id": record.policy_id,
                "repository": record.source_repository,
                "target": record.policy.target,
                "tag_template": record.policy.tag_template,
                "rules": record.policy.rules,
                "sign_as": record.policy.sign_as,
            },
            "evaluation": record.evaluation,
            "database_generation": generation,
            "source": {"repository": record.source_repository, "tag": record.source_tag, "digest": record.digest},
            "target": {"repository": record.policy.target, "tag": record.target_tag},
            "promoted_at": now,
        });
        let repo = record.policy.target.as_str();
        let name = format!("{}/{repo}", self.public_host());
        let statement = build_statement(&name, &image, PROMOTION, predicate);
        self.put_registry_attestations(repo, &image, &key, &[(PROMOTION, statement)], &now, false)
            .await
    }

    /// Attaches `statements` (predicate type, statement), each signed by
    /// `key` in a sigstore bundle, as referrers of the image in `repo`;
    /// with `replace`, removes the registry's earlier referrers of the same
    /// types (a scan's record supersedes the last one; each promotion is
    /// its own).
    async fn put_registry_attestations(
        &self,
        repo: &str,
        image: &Digest,
        key: &SigningKey,
        statements: &[(&str, Vec<u8>)],
        created: &str,
        replace: bool,
    ) -> Result<(), RegistryError> {
        let Some(subject) = self.meta.get_manifest(repo, &Reference::Digest(image.clone())).await? else {
            return Ok(()); // deleted since the scan
        };
        let earlier = self.meta.referrers(repo, image, Some(BUNDLE_MEDIA_TYPE)).await?;
        self.put_small_blob(repo, b"{}").await?;
        for (predicate_type, statement) in statements {
            let bundle = sign_statement_bundle(key, statement).map_err(|e| RegistryError::Internal(e.to_string()))?;
            let (layer, size) = self.put_small_blob(repo, &bundle).await?;
            let subject_ref = (subject.media_type.as_str(), image, subject.content.len() as u64);
            let manifest = marked(&bundle_manifest(subject_ref, (&layer, size), predicate_type, created));
            let parsed = Manifest::parse(&manifest, Some(media_type::OCI_MANIFEST))?;
            let digest = Digest::sha256_of(&manifest);
            let annotations = serde_json::from_slice::<Value>(&manifest).expect("json")["annotations"].to_string();
            let event = AuditEvent::ok("portcullis", "attestation")
                .repository(repo)
                .digest(image.as_str())
                .detail(format!(
                    "{predicate_type} registry key {} referrer {digest}",
                    key.public.id
                ));
            self.meta
                .put_manifest(
                    NewManifest {
                        repo,
                        digest: &digest,
                        media_type: media_type::OCI_MANIFEST,
                        artifact_type: Some(BUNDLE_MEDIA_TYPE),
                        subject: Some(image),
                        annotations: Some(annotations),
                        content: &manifest,
                        blobs: parsed.required_blobs(),
                        children: Vec::new(),
                        tags: Vec::new(),
                    },
                    &event,
                )
                .await?;
            // The statement just attached replaces the registry's earlier
            // ones of its type.
            for old in earlier.iter().filter(|_| replace) {
                let a: Value = old
                    .annotations
                    .as_deref()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_default();
                if a[MADE_BY_ANNOTATION] != MADE_BY_REGISTRY || a[BUNDLE_PREDICATE_ANNOTATION] != *predicate_type {
                    continue;
                }
                let Ok(d) = old.digest.parse::<Digest>() else { continue };
                if d == digest {
                    continue;
                }
                let event = AuditEvent::ok("portcullis", "attestation.replace")
                    .repository(repo)
                    .digest(image.as_str())
                    .detail(format!("{predicate_type} referrer {d}"));
                // One that can't go (an index or an immutable tag holds
                // it) is left: it never stops the new statement or the
                // other repositories' from being written.
                if let Err(e) = self.meta.delete_manifest(repo, &d, &event).await {
                    tracing::warn!(%repo, referrer = %d, error = %e, "removing an earlier registry attestation");
                }
            }
        }
        self.invalidate(repo);
        Ok(())
    }
}

/// A referrer manifest marked as the registry's own.
fn marked(manifest: &[u8]) -> Vec<u8> {
    let mut m: Value = serde_json::from_slice(manifest).expect("a manifest just built");
    m["annotations"][MADE_BY_ANNOTATION] = MADE_BY_REGISTRY.into();
    serde_json::to_vec(&m).expect("json")
}
