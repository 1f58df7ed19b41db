//! Token signing keys on disk: `<data>/keys/<kid>.pk8`, PKCS#8 Ed25519,
//! readable by the owner only. Key ids sort by creation time, so the last
//! one signs; older ones still verify tokens issued before a rotation.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_auth::TokenKeys;

fn kid_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("k{ms:015}")
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

fn write_new_key(dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)?;
    let kid = kid_now();
    let tmp = dir.join(format!(".{kid}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        restrict(&tmp, 0o600)?;
        f.write_all(&TokenKeys::generate_pkcs8())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(format!("{kid}.pk8")))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(kid)
}

/// The keys in `dir`, oldest first, creating the first one if there is none.
pub fn load_or_create(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut keys = load(dir)?;
    if keys.is_empty() {
        write_new_key(dir)?;
        keys = load(dir)?;
    }
    Ok(keys)
}

fn load(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(kid) = name.strip_suffix(".pk8").filter(|k| !k.starts_with('.')) {
            keys.push((kid.to_string(), std::fs::read(entry.path())?));
        }
    }
    keys.sort();
    Ok(keys)
}

pub fn dir_mtime(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir).and_then(|m| m.modified()).ok()
}

/// Adds a new signing key and removes keys that stopped signing more than
/// `keep` ago (no token they signed can still be valid). Returns the new key id
/// and the removed ones.
pub fn rotate(dir: &Path, keep: Duration) -> std::io::Result<(String, Vec<String>)> {
    let before = load(dir)?;
    let kid = write_new_key(dir)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut removed = Vec::new();
    // A key stopped signing when its successor was created.
    for pair in before.windows(2) {
        let successor_ms: u128 = pair[1].0.trim_start_matches('k').parse().unwrap_or(u128::MAX);
        if now.saturating_sub(successor_ms) > keep.as_millis() {
            std::fs::remove_file(dir.join(format!("{}.pk8", pair[0].0)))?;
            removed.push(pair[0].0.clone());
        }
    }
    Ok((kid, removed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn create_rotate_prune() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = super::load_or_create(&keys).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(super::load_or_create(&keys).unwrap(), first, "stable across starts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = keys.join(format!("{}.pk8", first[0].0));
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (k2, removed) = super::rotate(&keys, std::time::Duration::from_secs(3600)).unwrap();
        assert!(removed.is_empty());
        let now = super::load(&keys).unwrap();
        assert_eq!(now.len(), 2);
        assert_eq!(now[1].0, k2, "the new key sorts last and signs");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (_, removed) = super::rotate(&keys, std::time::Duration::ZERO).unwrap();
        assert_eq!(
            removed,
            vec![first[0].0.clone()],
            "only the key that stopped signing before the window"
        );
    }
}

/// The key-encryption key that seals server-side signing keys at rest:
/// `<dir>/signing.kek` (32 random bytes, mode 0600), made on first use.
pub fn load_or_create_kek(dir: &Path) -> std::io::Result<[u8; 32]> {
    match load_secret(dir, "signing.kek")? {
        Some(kek) => Ok(kek),
        None => {
            let kek = random_secret()?;
            store_secret(dir, "signing.kek", &kek)?;
            Ok(kek)
        }
    }
}

/// A 32-byte secret kept as `<dir>/<name>`, if it is there.
pub fn load_secret(dir: &Path, name: &str) -> std::io::Result<Option<[u8; 32]>> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes.try_into().map_err(|_| {
            std::io::Error::other(format!("{} is not 32 bytes", path.display()))
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn random_secret() -> std::io::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    Ok(secret)
}

/// Writes a secret as `<dir>/<name>` (mode 0600, directory 0700), whole or not at all.
pub fn store_secret(dir: &Path, name: &str, secret: &[u8; 32]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        restrict(&tmp, 0o600)?;
        f.write_all(secret)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))
}

/// Seals `secret` with AES-256-GCM under `kek`, bound to `aad` (which must
/// be given again to open it): nonce then ciphertext.
pub fn seal(kek: &[u8; 32], secret: &[u8], aad: &[u8]) -> Vec<u8> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).expect("32-byte key"));
    let mut nonce = [0u8; 12];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).expect("randomness");
    let mut data = secret.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut data)
        .expect("sealing in memory");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    out
}

/// Opens what [`seal`] made; `None` unless it was sealed under `kek` with `aad`.
pub fn unseal(kek: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek).ok()?);
    let (nonce, data) = sealed.split_at_checked(12)?;
    let mut data = data.to_vec();
    let plain = key
        .open_in_place(Nonce::try_assume_unique_for_key(nonce).ok()?, Aad::from(aad), &mut data)
        .ok()?;
    Some(plain.to_vec())
}

/// How a service account's signing key is stored in `signing_keys.sealed`.
///
/// Version 2 (written now) is `v2:` then base64 of [`seal`] with the
/// account's name as associated data: someone who can write the database
/// but lacks the key-encryption key cannot move a sealed key to another
/// account (it no longer opens there), nor strip the prefix (version 1
/// opens without the associated data, so the tag fails). `:` is not in the
/// base64 alphabet, so no version 1 value starts with `v2:`.
///
/// Version 1 (before) is plain base64 of [`seal`] with no associated data.
/// Such rows still open, so signing survives the upgrade; the server
/// re-seals one as version 2 the first time it signs with it
/// ([`SealedKey::legacy`]). Until then it is not bound to its account.
const SEALED_V2: &str = "v2:";

/// A signing key opened from `signing_keys.sealed`.
pub struct SealedKey {
    pub pkcs8: Vec<u8>,
    /// Stored in version 1 (not bound to its account): re-seal it.
    pub legacy: bool,
}

fn account_aad(account: &str) -> Vec<u8> {
    // A fixed label first, so this associated data means nothing elsewhere.
    [b"portcullis signing key\0".as_slice(), account.as_bytes()].concat()
}

/// Seals `account`'s signing key (PKCS#8) for `signing_keys.sealed`.
pub fn seal_signing_key(kek: &[u8; 32], account: &str, pkcs8: &[u8]) -> String {
    use base64::Engine;
    let sealed = seal(kek, pkcs8, &account_aad(account));
    format!(
        "{SEALED_V2}{}",
        base64::engine::general_purpose::STANDARD.encode(sealed)
    )
}

/// Opens `account`'s sealed signing key; `None` if it was sealed under
/// another key-encryption key, for another account, or altered.
pub fn unseal_signing_key(kek: &[u8; 32], account: &str, stored: &str) -> Option<SealedKey> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    match stored.strip_prefix(SEALED_V2) {
        Some(v2) => Some(SealedKey {
            pkcs8: unseal(kek, &b64.decode(v2).ok()?, &account_aad(account))?,
            legacy: false,
        }),
        None => Some(SealedKey {
            pkcs8: unseal(kek, &b64.decode(stored).ok()?, &[])?,
            legacy: true,
        }),
    }
}

fn registry_aad(registry: &str) -> Vec<u8> {
    [b"portcullis registry password\0".as_slice(), registry.as_bytes()].concat()
}

/// Seals an upstream registry's password as signing keys are sealed
/// (AES-256-GCM under the key-encryption key), bound to the registry's
/// name, for `upstream_registries.sealed_password`.
pub fn seal_registry_password(kek: &[u8; 32], registry: &str, password: &str) -> String {
    use base64::Engine;
    let sealed = seal(kek, password.as_bytes(), &registry_aad(registry));
    format!(
        "{SEALED_V2}{}",
        base64::engine::general_purpose::STANDARD.encode(sealed)
    )
}

/// Opens what [`seal_registry_password`] made; `None` if it was sealed
/// under another key-encryption key, for another registry, or altered.
pub fn unseal_registry_password(kek: &[u8; 32], registry: &str, stored: &str) -> Option<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = unseal(
        kek,
        &b64.decode(stored.strip_prefix(SEALED_V2)?).ok()?,
        &registry_aad(registry),
    )?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod kek_tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_kek() {
        let dir = tempfile::tempdir().unwrap();
        let kek = load_or_create_kek(dir.path()).unwrap();
        assert_eq!(load_or_create_kek(dir.path()).unwrap(), kek, "made once");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("signing.kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = seal(&kek, b"a pkcs8 key", b"");
        assert_ne!(&sealed[12..], b"a pkcs8 key");
        assert_eq!(unseal(&kek, &sealed, b"").unwrap(), b"a pkcs8 key");
        assert!(unseal(&[7u8; 32], &sealed, b"").is_none());
        assert!(load(dir.path()).unwrap().is_empty(), "not mistaken for a token key");
    }

    #[test]
    fn sealed_registry_passwords_open_only_for_their_registry() {
        let kek = [7u8; 32];
        let sealed = seal_registry_password(&kek, "hub", "s3cret");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            unseal_registry_password(&kek, "hub", &sealed).as_deref(),
            Some("s3cret")
        );
        assert_eq!(unseal_registry_password(&kek, "other", &sealed), None);
        assert_eq!(unseal_registry_password(&[8u8; 32], "hub", &sealed), None);
        // A signing key's sealing does not open as a password, nor the reverse.
        assert!(unseal_signing_key(&kek, "hub", &sealed).is_none());
    }

    #[test]
    fn sealed_signing_keys_open_only_for_their_account() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let kek = [1u8; 32];
        let pkcs8 = b"ci+release's pkcs8 key";
        let for_a = seal_signing_key(&kek, "ci+release", pkcs8);
        let v1 = b64.encode(seal(&kek, pkcs8, b""));
        let stripped = for_a.strip_prefix("v2:").unwrap().to_string();
        // (stored value, kek, account asking, opens as: None, Some(legacy))
        let table: [(&str, [u8; 32], &str, Option<bool>); 8] = [
            (&for_a, kek, "ci+release", Some(false)),
            (&for_a, kek, "ci+other", None),
            (&for_a, kek, "ci+release ", None),
            (&for_a, kek, "CI+release", None),
            (&for_a, [2u8; 32], "ci+release", None),
            // The prefix stripped: read as version 1, the tag fails.
            (&stripped, kek, "ci+release", None),
            // Version 1 rows (no associated data) still open, as legacy.
            (&v1, kek, "ci+release", Some(true)),
            (&v1, [2u8; 32], "ci+release", None),
        ];
        for (i, (stored, kek, account, opens)) in table.into_iter().enumerate() {
            let opened = unseal_signing_key(&kek, account, stored);
            assert_eq!(opened.as_ref().map(|k| k.legacy), opens, "row {i}");
            if let Some(k) = opened {
                assert_eq!(k.pkcs8, pkcs8, "row {i}");
            }
        }
    }
}
