//! A small read cache for manifests, so `GET /manifests/<tag>` — the hottest
//! request a registry serves — usually costs no database round trip.
//!
//! Never the truth: entries for a repository are dropped whenever this
//! process writes to it, and every entry expires after `ttl`, which bounds
//! how long a change made by another process (a second replica, `portcullis
//! gc`) can go unseen. A `ttl` of zero turns the cache off.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

#[derive(Debug, Clone)]
pub struct CachedManifest {
    pub digest: Arc<str>,
    pub media_type: Arc<str>,
    pub content: Bytes,
}

struct Entry {
    manifest: CachedManifest,
    at: Instant,
}

pub struct ManifestCache {
    ttl: Duration,
    max_bytes: usize,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    repos: HashMap<String, HashMap<String, Entry>>,
    bytes: usize,
    /// Bumped by every invalidation: a read that started before a write
    /// must not cache what it read.
    generation: u64,
}

impl ManifestCache {
    pub fn new(ttl: Duration, max_bytes: usize) -> ManifestCache {
        ManifestCache {
            ttl,
            max_bytes,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// A fresh entry. When the entry has just expired, the first caller to
    /// see that gets `None` and reads the database; callers meanwhile keep
    /// getting the old entry, so an expiry under load is one database read,
    /// not one per request in flight (the herd that made pull p99 spike).
    pub fn get(&self, repo: &str, reference: &str) -> Option<CachedManifest> {
        if self.ttl.is_zero() {
            return None;
        }
        {
            let inner = self.inner.read().unwrap();
            let e = inner.repos.get(repo)?.get(reference)?;
            if e.at.elapsed() < self.ttl {
                return Some(e.manifest.clone());
            }
        }
        let mut inner = self.inner.write().unwrap();
        let e = inner.repos.get_mut(repo)?.get_mut(reference)?;
        if e.at.elapsed() < self.ttl {
            return Some(e.manifest.clone());
        }
        // Claimed: the next `put` (or `forget`) settles it.
        e.at = Instant::now();
        None
    }

    /// Drops one entry (the database no longer has it).
    pub fn forget(&self, repo: &str, reference: &str) {
        let mut inner = self.inner.write().unwrap();
        if let Some(e) = inner.repos.get_mut(repo).and_then(|r| r.remove(reference)) {
            inner.bytes -= e.manifest.content.len();
        }
    }

    /// The generation to hand back to [`ManifestCache::put`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.inner.read().unwrap().generation
    }

    /// Caches what a read found, unless a write happened since `generation`.
    pub fn put(&self, generation: u64, repo: &str, reference: &str, manifest: CachedManifest) {
        if self.ttl.is_zero() || manifest.content.len() > self.max_bytes / 16 {
            return;
        }
        let mut inner = self.inner.write().unwrap();
        if inner.generation != generation {
            return;
        }
        if inner.bytes + manifest.content.len() > self.max_bytes {
            // Rare and cheap: start over rather than track recency.
            inner.repos.clear();
            inner.bytes = 0;
        }
        inner.bytes += manifest.content.len();
        let old = inner.repos.entry(repo.to_string()).or_default().insert(
            reference.to_string(),
            Entry {
                manifest,
                at: Instant::now(),
            },
        );
        if let Some(old) = old {
            inner.bytes -= old.manifest.content.len();
        }
    }

    /// Forgets everything about `repo`; called on every write to it.
    pub fn invalidate(&self, repo: &str) {
        let mut inner = self.inner.write().unwrap();
        inner.generation += 1;
        if let Some(entries) = inner.repos.remove(repo) {
            inner.bytes -= entries.values().map(|e| e.manifest.content.len()).sum::<usize>();
        }
    }
}

/// A small cache of values read from the database by key, each believed
/// for `ttl`. When an entry expires, the first caller to see that gets
/// `None` and reads the database (then `put`s); the others keep the old
/// value meanwhile, so an expiry under load is one read, not a herd. Past
/// `MAX_ENTRIES` keys it starts over (rare and cheap, rather than track recency).
pub(crate) struct TtlMap<V> {
    ttl: Duration,
    entries: std::sync::Mutex<HashMap<String, (Instant, V)>>,
}

const MAX_ENTRIES: usize = 100_000;

impl<V: Clone> TtlMap<V> {
    pub(crate) fn new(ttl: Duration) -> TtlMap<V> {
        TtlMap {
            ttl,
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let mut entries = self.entries.lock().expect("not poisoned");
        let (at, value) = entries.get_mut(key)?;
        if at.elapsed() < self.ttl {
            return Some(value.clone());
        }
        // Claimed: this caller's `put` settles it.
        *at = Instant::now();
        None
    }

    pub(crate) fn put(&self, key: &str, value: V) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (Instant::now(), value));
    }

    pub(crate) fn forget(&self, key: &str) {
        self.entries.lock().expect("not poisoned").remove(key);
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().expect("not poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(body: &str) -> CachedManifest {
        CachedManifest {
            digest: "sha256:x".into(),
            media_type: "t".into(),
            content: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn expires_invalidates_and_stays_bounded() {
        let c = ManifestCache::new(Duration::from_millis(50), 1600);
        let g = c.generation();
        c.put(g, "r", "v1", m("abc"));
        assert_eq!(c.get("r", "v1").unwrap().content, "abc");
        assert!(c.get("r", "v2").is_none() && c.get("other", "v1").is_none());
        c.invalidate("r");
        assert!(c.get("r", "v1").is_none());
        c.put(g, "r", "v1", m("stale"));
        assert!(c.get("r", "v1").is_none(), "a read from before the write is not cached");
        let g = c.generation();
        c.put(g, "r", "v1", m("abc"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("r", "v1").is_none(), "expired: this caller reads the database");
        assert_eq!(
            c.get("r", "v1").unwrap().content,
            "abc",
            "others keep the old entry while it does"
        );
        c.put(c.generation(), "r", "v1", m("new"));
        assert_eq!(c.get("r", "v1").unwrap().content, "new");
        c.forget("r", "v1");
        assert!(c.get("r", "v1").is_none(), "gone from the database: gone here");
        for i in 0..100 {
            c.put(g, "r", &format!("t{i}"), m(&"x".repeat(90)));
        }
        assert!(c.inner.read().unwrap().bytes <= 1600);
        let off = ManifestCache::new(Duration::ZERO, 1 << 20);
        off.put(0, "r", "v1", m("abc"));
        assert!(off.get("r", "v1").is_none());
    }

    #[test]
    fn ttl_map_renews_an_expired_entry_for_one_reader() {
        let m = TtlMap::new(Duration::from_millis(30));
        assert_eq!(m.get("r"), None);
        m.put("r", 1);
        assert_eq!(m.get("r"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(m.get("r"), None, "expired: this caller reads the database");
        assert_eq!(m.get("r"), Some(1), "others keep the old value while it does");
        m.put("r", 2);
        assert_eq!(m.get("r"), Some(2));
        m.forget("r");
        assert_eq!(m.get("r"), None);
    }
}
