//! The on-disk index of one generation, `index.sqlite`: advisories keyed
//! by (ecosystem, package), CVSS vectors and distribution notes keyed by
//! vulnerability id.
//!
//! Why SQLite: the index must not live in memory (the real OSV corpus is
//! gigabytes), a scan must read only the packages an image has, and the
//! file must open in milliseconds. SQLite is already in the tree (the scan
//! crate reads `rpmdb.sqlite` with it), its page cache is bounded per
//! connection, and a B-tree lookup per package is what a scan needs.
//! Readers never map the file (`mmap_size = 0`), so its pages count in the
//! kernel's page cache, not in the process's resident memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use portcullis_scan::matching::{distribution_of, rows, AdvisoryStore, Candidate, Head, LookupError, Publisher};
use portcullis_scan::osv::{Advisory, DistroNote};
use portcullis_scan::severity::Vector;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::VulnDbError;

pub(crate) const FILE: &str = "index.sqlite";
/// Bumped when the schema or the rows' encoding changes; an index of
/// another version is rebuilt from the generation's source files.
const SCHEMA: &str = "3";
/// Page cache per reading connection (SQLite's KiB when negative).
const READER_CACHE_KIB: i64 = 2048;
/// Reading connections, opened with the index.
const POOL: usize = 4;
/// What the decoded candidates of recently matched packages may take.
/// Images share most of their packages (a base image, a language
/// runtime), and decoding a package's entries is most of a lookup's cost;
/// the bound keeps a server's memory independent of the database's size.
const CANDIDATE_CACHE_BYTES: usize = 4 << 20;

fn index_err(path: &Path) -> impl Fn(rusqlite::Error) -> VulnDbError + '_ {
    move |e| VulnDbError::Index(format!("{}: {e}", path.display()))
}

/// Writes the index of a generation being built.
pub(crate) struct IndexWriter {
    conn: Connection,
    path: PathBuf,
    /// Ids seen in the source being added, and their head rows: a record
    /// whose id comes again later in the same source is replaced by it.
    seen: HashMap<String, i64>,
    source: i64,
    fresh: bool,
    /// The distributions (or `None`: a language ecosystem) of the current
    /// source's affected entries, which decide its publisher.
    families: std::collections::BTreeSet<Option<String>>,
}

impl IndexWriter {
    /// A new, empty index at `path`, or a copy of `previous` to update.
    pub(crate) fn create(path: &Path, previous: Option<&Path>) -> Result<IndexWriter, VulnDbError> {
        let err = index_err(path);
        if let Some(prev) = previous {
            std::fs::copy(prev, path).map_err(|e| VulnDbError::Io {
                path: prev.to_path_buf(),
                source: e,
            })?;
        }
        let conn = Connection::open(path).map_err(&err)?;
        // The file is private to the build until the generation is
        // switched in, and a crash abandons the whole build: no journal.
        conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;")
            .map_err(&err)?;
        let fresh = previous.is_none();
        if fresh {
            conn.execute_batch(
                "PRAGMA page_size = 8192;
                 CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE source(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, publisher TEXT);
                 CREATE TABLE head(id INTEGER PRIMARY KEY, source INTEGER NOT NULL, data BLOB NOT NULL);
                 CREATE TABLE affected(ecosystem TEXT NOT NULL, package TEXT NOT NULL, head INTEGER NOT NULL,
                     seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (ecosystem, package, head, seq))
                     WITHOUT ROWID;
                 CREATE TABLE vector(vid TEXT NOT NULL, head INTEGER NOT NULL, origin TEXT NOT NULL, vector TEXT NOT NULL);
                 CREATE TABLE note(ecosystem TEXT NOT NULL, package TEXT NOT NULL, vid TEXT NOT NULL,
                     head INTEGER NOT NULL, data BLOB NOT NULL);",
            )
            .map_err(&err)?;
            conn.execute("INSERT INTO meta VALUES ('schema', ?1)", [SCHEMA])
                .map_err(&err)?;
        } else {
            check_schema(&conn, path)?;
        }
        conn.execute_batch("BEGIN").map_err(&err)?;
        Ok(IndexWriter {
            conn,
            path: path.to_path_buf(),
            seen: HashMap::new(),
            families: Default::default(),
            source: 0,
            fresh,
        })
    }

    /// Removes every row of the source called `name`, if any.
    pub(crate) fn drop_source(&mut self, name: &str) -> Result<(), VulnDbError> {
        let err = index_err(&self.path);
        let id: Option<i64> = self
            .conn
            .query_row("SELECT id FROM source WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(&err)?;
        let Some(id) = id else { return Ok(()) };
        self.conn
            .execute_batch(&format!(
                "DELETE FROM affected WHERE head IN (SELECT id FROM head WHERE source = {id});
                 DELETE FROM vector WHERE head IN (SELECT id FROM head WHERE source = {id});
                 DELETE FROM note WHERE head IN (SELECT id FROM head WHERE source = {id});
                 DELETE FROM head WHERE source = {id};
                 DELETE FROM source WHERE id = {id};"
            ))
            .map_err(&err)
    }

    /// The names of the sources in the index.
    pub(crate) fn sources(&self) -> Result<Vec<String>, VulnDbError> {
        let err = index_err(&self.path);
        let mut stmt = self.conn.prepare("SELECT name FROM source").map_err(&err)?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .map_err(&err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(&err)?;
        Ok(names)
    }

    /// Starts adding the records of the source called `name`.
    pub(crate) fn begin_source(&mut self, name: &str) -> Result<(), VulnDbError> {
        self.end_source()?;
        self.drop_source(name)?;
        let err = index_err(&self.path);
        self.conn
            .execute("INSERT INTO source(name) VALUES (?1)", [name])
            .map_err(&err)?;
        self.source = self.conn.last_insert_rowid();
        self.seen.clear();
        Ok(())
    }

    /// Records the current source's publisher: the one distribution all
    /// its affected entries belong to, if there is one.
    fn end_source(&mut self) -> Result<(), VulnDbError> {
        if self.source == 0 {
            return Ok(());
        }
        let families = std::mem::take(&mut self.families);
        let publisher = match families.iter().collect::<Vec<_>>().as_slice() {
            [Some(d)] => Some((*d).clone()),
            _ => None,
        };
        self.conn
            .execute(
                "UPDATE source SET publisher = ?1 WHERE id = ?2",
                params![publisher, self.source],
            )
            .map_err(index_err(&self.path))?;
        self.source = 0;
        Ok(())
    }

    /// Adds one record of the current source; `true` when it replaced an
    /// earlier record of the same id.
    pub(crate) fn add(&mut self, advisory: &Advisory) -> Result<bool, VulnDbError> {
        let err = index_err(&self.path);
        let replaced = match self.seen.get(&advisory.id) {
            Some(&old) => {
                for table in ["affected", "vector", "note"] {
                    self.conn
                        .prepare_cached(&format!("DELETE FROM {table} WHERE head = ?1"))
                        .and_then(|mut s| s.execute([old]))
                        .map_err(&err)?;
                }
                self.conn
                    .prepare_cached("DELETE FROM head WHERE id = ?1")
                    .and_then(|mut s| s.execute([old]))
                    .map_err(&err)?;
                true
            }
            None => false,
        };
        let Some(rows) = rows(advisory) else {
            self.seen.remove(&advisory.id);
            return Ok(replaced);
        };
        for (eco, _, _) in &rows.affected {
            self.families.insert(distribution_of(eco));
        }
        let head_json = serde_json::to_vec(&rows.head).expect("a head serializes");
        self.conn
            .prepare_cached("INSERT INTO head(source, data) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![self.source, head_json]))
            .map_err(&err)?;
        let head = self.conn.last_insert_rowid();
        self.seen.insert(advisory.id.clone(), head);
        {
            let mut stmt = self
                .conn
                .prepare_cached("INSERT OR REPLACE INTO affected VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(&err)?;
            for (seq, (eco, pkg, mut aff)) in rows.affected.into_iter().enumerate() {
                // The key says which package; the note lives in `note` too.
                aff.package = None;
                let data = serde_json::to_vec(&aff).expect("an affected entry serializes");
                stmt.execute(params![eco, pkg, head, seq as i64, data]).map_err(&err)?;
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare_cached("INSERT INTO vector VALUES (?1, ?2, ?3, ?4)")
                .map_err(&err)?;
            for (id, v) in rows.vectors {
                stmt.execute(params![id, head, v.origin, v.vector]).map_err(&err)?;
            }
        }
        {
            let mut stmt = self
                .conn
                .prepare_cached("INSERT INTO note VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(&err)?;
            for (eco, pkg, id, note) in rows.notes {
                let data = serde_json::to_vec(&note).expect("a note serializes");
                stmt.execute(params![eco, pkg, id, head, data]).map_err(&err)?;
            }
        }
        Ok(replaced)
    }

    /// Commits, builds the lookup indexes of a fresh file, and syncs it.
    /// The statistics keep no samples (`sqlite_stat4`): with samples, SQLite
    /// plans a statement again for every new value bound to it, and a scan
    /// paid a parse and a plan for each of its lookups.
    pub(crate) fn finish(mut self) -> Result<(), VulnDbError> {
        self.end_source()?;
        let err = index_err(&self.path);
        self.conn.execute_batch("COMMIT").map_err(&err)?;
        if self.fresh {
            self.conn
                .execute_batch(
                    "CREATE INDEX vector_vid ON vector(vid);
                     CREATE INDEX vector_head ON vector(head);
                     CREATE INDEX note_key ON note(ecosystem, package, vid);
                     CREATE INDEX note_head ON note(head);
                     CREATE INDEX head_source ON head(source);
                     CREATE INDEX affected_head ON affected(head);
                     ANALYZE;
                     DELETE FROM sqlite_stat4;",
                )
                .map_err(&err)?;
        }
        self.conn.close().map_err(|(_, e)| err(e))?;
        let file = std::fs::File::open(&self.path).map_err(|e| VulnDbError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        file.sync_all().map_err(|e| VulnDbError::Io {
            path: self.path.clone(),
            source: e,
        })
    }
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), VulnDbError> {
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
        .optional()
        .map_err(index_err(path))?;
    if version.as_deref() == Some(SCHEMA) {
        Ok(())
    } else {
        Err(VulnDbError::Damaged(format!(
            "{} has index schema {version:?}, this Portcullis reads {SCHEMA:?}",
            path.display()
        )))
    }
}

/// Whether the index at `path` can be read by this version.
pub(crate) fn is_current(path: &Path) -> bool {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .is_some_and(|c| check_schema(&c, path).is_ok())
}

/// A generation's index, open for lookups. Connections are pooled: a
/// `rusqlite::Connection` serves one thread at a time. All of them are
/// opened at once and none later: an import may delete this generation's
/// directory while a scan still reads it, and open files outlive the
/// unlinking where a new open would fail.
pub struct DiskIndex {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    returned: Condvar,
    advisories: u64,
    recent: Mutex<CandidateCache>,
}

/// The decoded candidates of the packages looked up last, least recently
/// used first, within [`CANDIDATE_CACHE_BYTES`]. A generation's index never
/// changes, so an entry is never stale.
#[derive(Default)]
struct CandidateCache {
    entries: hashlink::LinkedHashMap<(String, String), (Arc<Vec<Candidate>>, usize)>,
    bytes: usize,
}

impl CandidateCache {
    fn get(&mut self, key: &(String, String)) -> Option<Arc<Vec<Candidate>>> {
        self.entries.to_back(key).map(|(c, _)| c.clone())
    }

    fn insert(&mut self, key: (String, String), found: Arc<Vec<Candidate>>) {
        let size = key.0.len() + key.1.len() + std::mem::size_of::<(String, String)>() * 2 + heap_size(&found);
        if size > CANDIDATE_CACHE_BYTES / 4 {
            return;
        }
        if let Some((_, old)) = self.entries.insert(key, (found, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > CANDIDATE_CACHE_BYTES {
            match self.entries.pop_front() {
                Some((_, (_, n))) => self.bytes -= n,
                None => break,
            }
        }
    }
}

/// About what decoded candidates take on the heap (allocator overhead
/// aside): what the cache's bound counts.
fn heap_size(found: &[Candidate]) -> usize {
    use portcullis_scan::osv::{Event, Range};
    use std::mem::size_of;
    let text = |s: &String| s.capacity();
    found.iter().fold(size_of::<Vec<Candidate>>(), |n, c| {
        let a = &c.affected;
        n + size_of::<Candidate>()
            + a.ranges.iter().fold(0, |n, r| {
                n + size_of::<Range>()
                    + text(&r.kind)
                    + r.events.iter().fold(0, |n, e| {
                        n + size_of::<Event>()
                            + match e {
                                Event::Introduced(s) | Event::Fixed(s) | Event::LastAffected(s) | Event::Limit(s) => {
                                    text(s)
                                }
                            }
                    })
            })
            + a.versions.iter().fold(0, |n, v| n + size_of::<String>() + text(v))
            + a.note.as_ref().map_or(0, |d| {
                [&d.urgency, &d.nodsa, &d.nodsa_reason]
                    .iter()
                    .fold(0, |n, s| n + s.as_ref().map_or(0, text))
            })
    })
}

impl DiskIndex {
    pub(crate) fn open(path: &Path) -> Result<DiskIndex, VulnDbError> {
        let conn = connect(path)?;
        check_schema(&conn, path)?;
        let advisories: i64 = conn
            .query_row("SELECT count(*) FROM head", [], |r| r.get(0))
            .map_err(index_err(path))?;
        let mut pool = vec![conn];
        while pool.len() < POOL {
            pool.push(connect(path)?);
        }
        Ok(DiskIndex {
            path: path.to_path_buf(),
            pool: Mutex::new(pool),
            returned: Condvar::new(),
            advisories: advisories as u64,
            recent: Mutex::default(),
        })
    }

    /// Advisories in the index (withdrawn ones excluded).
    pub fn len(&self) -> u64 {
        self.advisories
    }

    pub fn is_empty(&self) -> bool {
        self.advisories == 0
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, LookupError> {
        let conn = {
            let mut pool = self.pool.lock().expect("pool");
            loop {
                match pool.pop() {
                    Some(c) => break c,
                    None => pool = self.returned.wait(pool).expect("pool"),
                }
            }
        };
        let result = f(&conn).map_err(|e| LookupError(format!("{}: {e}", self.path.display())));
        self.pool.lock().expect("pool").push(conn);
        self.returned.notify_one();
        result
    }
}

/// A reading connection. A generation's index never changes once switched
/// in (the next import writes a copy), so it is opened `immutable`: no
/// file locks, no hot-journal checks, a page cache that stays valid, where
/// each lookup otherwise cost a lock, an unlock and a stat (a third of a
/// scan's match time).
fn connect(path: &Path) -> Result<Connection, VulnDbError> {
    let err = index_err(path);
    // `file://` and an absolute path: a path of its own starting with `//`
    // must not read as an authority.
    let absolute = std::path::absolute(path).map_err(crate::io_err(path))?;
    let mut uri = String::from("file://");
    for c in absolute.display().to_string().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(&err)?;
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{READER_CACHE_KIB}; PRAGMA mmap_size = 0; PRAGMA query_only = 1;"
    ))
    .map_err(&err)?;
    Ok(conn)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> rusqlite::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))
}

impl AdvisoryStore for DiskIndex {
    fn candidates(&self, ecosystem: &str, package: &str) -> Result<Arc<Vec<Candidate>>, LookupError> {
        let key = (ecosystem.to_string(), package.to_string());
        if let Some(found) = self.recent.lock().expect("cache").get(&key) {
            return Ok(found);
        }
        let found = self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT head, data FROM affected WHERE ecosystem = ?1 AND package = ?2 ORDER BY head, seq",
            )?;
            let rows = stmt.query_map(params![ecosystem, package], |r| {
                Ok(Candidate {
                    head: r.get::<_, i64>(0)? as u64,
                    affected: decode(r.get_ref(1)?.as_blob()?)?,
                })
            })?;
            Ok(Arc::new(rows.collect::<Result<Vec<_>, _>>()?))
        })?;
        self.recent.lock().expect("cache").insert(key, found.clone());
        Ok(found)
    }

    fn head(&self, id: u64) -> Result<Arc<Head>, LookupError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT h.data, s.publisher FROM head AS h JOIN source AS s ON s.id = h.source WHERE h.id = ?1",
            )?;
            let head: Head = stmt.query_row([id as i64], |r| {
                let mut head: Head = decode(&r.get::<_, Vec<u8>>(0)?)?;
                head.publisher = match r.get::<_, Option<String>>(1)? {
                    Some(d) => Publisher::Distribution(d),
                    None => Publisher::Mixed,
                };
                Ok(head)
            })?;
            Ok(Arc::new(head))
        })
    }

    fn vectors(&self, ids: &[&str]) -> Result<Vec<Vector>, LookupError> {
        self.with(|conn| {
            // `json_each` keeps the ids' order (`key` is the position).
            let mut stmt = conn.prepare_cached(
                "SELECT v.origin, v.vector FROM json_each(?1) AS j JOIN vector AS v ON v.vid = j.value
                 ORDER BY j.key, v.rowid",
            )?;
            let rows = stmt.query_map([id_list(ids)], |r| {
                Ok(Vector {
                    origin: r.get(0)?,
                    vector: r.get(1)?,
                })
            })?;
            let mut out: Vec<Vector> = Vec::new();
            for v in rows {
                let v = v?;
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(out)
        })
    }

    fn notes(&self, ecosystem: &str, package: &str, ids: &[&str]) -> Result<Vec<DistroNote>, LookupError> {
        self.with(|conn| {
            // Only notes from sources that speak for the distribution.
            let mut stmt = conn.prepare_cached(
                "SELECT n.data FROM json_each(?3) AS j
                 JOIN note AS n ON n.ecosystem = ?1 AND n.package = ?2 AND n.vid = j.value
                 JOIN head AS h ON h.id = n.head
                 JOIN source AS s ON s.id = h.source AND s.publisher = ?4
                 ORDER BY j.key, n.rowid",
            )?;
            let publisher = distribution_of(ecosystem);
            let rows = stmt.query_map(params![ecosystem, package, id_list(ids), publisher], |r| {
                decode(&r.get::<_, Vec<u8>>(0)?)
            })?;
            rows.collect()
        })
    }
}

/// Ids as the JSON array `json_each` reads.
fn id_list(ids: &[&str]) -> String {
    serde_json::to_string(ids).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_scan::osv::Affected;

    /// Candidates whose one `versions` entry is `len` bytes long.
    fn entry(len: usize) -> Arc<Vec<Candidate>> {
        Arc::new(vec![Candidate {
            head: 1,
            affected: Affected {
                package: None,
                ranges: vec![],
                versions: vec!["v".repeat(len)],
                note: None,
            },
        }])
    }

    fn key(name: &str) -> (String, String) {
        ("PyPI".into(), name.into())
    }

    #[test]
    fn the_candidate_cache_stays_within_its_bound_and_evicts_the_least_recently_used() {
        let quarter = CANDIDATE_CACHE_BYTES / 4 - 1024;
        let mut cache = CandidateCache::default();
        for name in ["a", "b", "c"] {
            cache.insert(key(name), entry(quarter));
        }
        // "a" used again: "b" is now the least recently used.
        assert!(cache.get(&key("a")).is_some());
        cache.insert(key("d"), entry(quarter));
        cache.insert(key("e"), entry(quarter));
        assert!(cache.bytes <= CANDIDATE_CACHE_BYTES, "{} bytes", cache.bytes);
        let held: Vec<bool> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| cache.get(&key(n)).is_some())
            .collect();
        assert_eq!(held, [true, false, true, true, true]);
        let counted: usize = cache.entries.values().map(|(_, n)| n).sum();
        assert_eq!(counted, cache.bytes);
    }

    #[test]
    fn a_package_too_big_for_a_quarter_of_the_cache_is_not_kept() {
        let mut cache = CandidateCache::default();
        cache.insert(key("small"), entry(10));
        cache.insert(key("huge"), entry(CANDIDATE_CACHE_BYTES / 4));
        assert!(cache.get(&key("huge")).is_none());
        assert!(cache.get(&key("small")).is_some());
    }
}
