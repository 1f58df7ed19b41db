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
