//! The rpm database, in the three formats images carry. Each holds one rpm
//! header blob per installed package, read by [`parse_header`]:
//! - `rpmdb.sqlite` (RHEL 9, AlmaLinux 9, Rocky 9, Fedora): a SQLite file
//!   whose `Packages` table holds the blobs;
//! - `Packages` (CentOS 7, RHEL/AlmaLinux/Rocky 8): a Berkeley DB hash
//!   database ([`bdb`]);
//! - `Packages.db` (SUSE): rpm's own NDB format ([`ndb`]).
//!
//! The SQLite bytes are opened in memory (SQLite's own deserializer, read-only),
//! so nothing touches the disk and a damaged file is SQLite's
//! `SQLITE_CORRUPT`, not ours to guess at.
//!
//! The file comes from an image, so it is hostile until read: `Packages`
//! must be a plain table (a view or a generated column could compute
//! endless or huge rows from a few bytes), SQLite runs in defensive mode
//! with an untrusted schema, and values, rows, total bytes and the work of
//! the query are all bounded.

use std::borrow::Cow;
use std::ptr::NonNull;

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::{Connection, DatabaseName, OpenFlags};

use crate::{Ecosystem, Package, Parsed};

pub mod bdb;
pub mod ndb;

pub const SQLITE_PATHS: [&str; 2] = ["var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"];
/// openSUSE moved the database to `usr/lib/sysimage/rpm` before it moved to NDB.
pub const BDB_PATHS: [&str; 2] = ["var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages"];
pub const NDB_PATHS: [&str; 2] = ["var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db"];

/// How an rpm database is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sqlite,
    BerkeleyDb,
    Ndb,
}

/// The format of the rpm database at `path`, if it is one.
pub fn database_format(path: &str) -> Option<Format> {
    if SQLITE_PATHS.contains(&path) {
        Some(Format::Sqlite)
    } else if BDB_PATHS.contains(&path) {
        Some(Format::BerkeleyDb)
    } else if NDB_PATHS.contains(&path) {
        Some(Format::Ndb)
    } else {
        None
    }
}

/// The installed packages in an rpm database of this format.
pub fn parse_database(format: Format, bytes: &[u8]) -> Parsed {
    match format {
        Format::Sqlite => parse_sqlite(bytes),
        Format::BerkeleyDb => bdb::parse(bytes),
        Format::Ndb => ndb::parse(bytes),
    }
}

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;

/// The largest header blob read (real ones are tens of KiB).
const MAX_HEADER_BYTES: i32 = 8 << 20;
pub(crate) const MAX_HEADER_LEN: usize = MAX_HEADER_BYTES as usize;
/// Installed packages read from one database.
pub(crate) const MAX_PACKAGES: usize = 100_000;
/// Header bytes held at once.
pub(crate) const MAX_TOTAL_BYTES: usize = 128 << 20;
/// SQLite virtual-machine steps, in units of `STEPS_PER_CHECK`: reading
/// tens of thousands of headers takes a small fraction of it.
const MAX_STEP_CHECKS: u32 = 20_000;
const STEPS_PER_CHECK: i32 = 10_000;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// The tags of one header this reader needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub epoch: Option<u32>,
    pub license: Option<String>,
    pub arch: Option<String>,
    pub source_rpm: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a header blob as rpm stores it in its database: entry count and
/// data length, the index entries (tag, type, offset, count), then the
/// data. Every offset is checked against the data, so a hostile blob
/// gets `None`, not a panic.
pub fn parse_header(blob: &[u8]) -> Option<Header> {
    let il = be32(blob, 0)? as usize;
    let dl = be32(blob, 4)? as usize;
    if il > 0x10000 || dl > blob.len() {
        return None;
    }
    let data_start = 8usize.checked_add(il.checked_mul(16)?)?;
    let data = blob.get(data_start..data_start.checked_add(dl)?)?;
    let string_at = |offset: usize| -> Option<String> {
        let rest = data.get(offset..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut h = Header::default();
    for i in 0..il {
        let at = 8 + i * 16;
        let (tag, kind, offset) = (be32(blob, at)?, be32(blob, at + 4)?, be32(blob, at + 8)? as usize);
        let text = || match kind {
            TYPE_STRING | TYPE_I18NSTRING => string_at(offset),
            _ => None,
        };
        match tag {
            NAME => h.name = text(),
            VERSION => h.version = text(),
            RELEASE => h.release = text(),
            LICENSE => h.license = text(),
            ARCH => h.arch = text(),
            SOURCERPM => h.source_rpm = text(),
            EPOCH if kind == TYPE_INT32 => h.epoch = be32(data, offset),
            _ => {}
        }
    }
    Some(h)
}

/// Opens SQLite bytes read-only in memory, with defensive settings.
fn open(bytes: &[u8]) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(":memory:", OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_HEADER_BYTES);
    let mut checks = 0u32;
    // Returning true interrupts the statement running.
    conn.progress_handler(
        STEPS_PER_CHECK,
        Some(move || {
            checks += 1;
            checks > MAX_STEP_CHECKS
        }),
    );
    let len = bytes.len().max(1);
    // SAFETY: the buffer comes from sqlite3_malloc64, as OwnedData requires;
    // it is fully written before SQLite sees it and SQLite frees it.
    let data = unsafe {
        let ptr = rusqlite::ffi::sqlite3_malloc64(len as u64) as *mut u8;
        let ptr = NonNull::new(ptr).ok_or(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOMEM),
            None,
        ))?;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len());
        // rpm keeps its database in WAL mode, which an in-memory copy
        // cannot use; the header's read/write versions (bytes 18 and 19)
        // say so. Mark the copy as a rollback-journal database: the
        // checkpointed pages are all there is in an image anyway.
        if bytes.len() >= 20 && bytes[18] == 2 && bytes[19] == 2 {
            *ptr.as_ptr().add(18) = 1;
            *ptr.as_ptr().add(19) = 1;
        }
        rusqlite::serialize::OwnedData::from_raw_nonnull(ptr, bytes.len())
    };
    conn.deserialize(DatabaseName::Main, data, true)?;
    Ok(conn)
}

/// The header blobs of `Packages`, once it is known to be a plain table,
/// within the row and byte bounds.
fn read_headers(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let conn = open(bytes).map_err(|e| e.to_string())?;
    // Names are case-insensitive: no object called Packages may be anything but a table.
    let kinds = (|| {
        let mut stmt = conn.prepare("SELECT type, sql FROM sqlite_master WHERE name = 'Packages' COLLATE NOCASE")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })()
    .map_err(|e| e.to_string())?;
    let plain = |(kind, sql): &(String, Option<String>)| {
        kind == "table"
            && !sql
                .as_deref()
                .unwrap_or("")
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE VIRTUAL")
    };
    if kinds.is_empty() {
        return Err("it has no Packages table".into());
    }
    if !kinds.iter().all(plain) {
        return Err("Packages is not a plain table".into());
    }
    // Generated columns are computed on read: refuse them too.
    let generated: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_xinfo('Packages') WHERE hidden <> 0",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    if generated > 0 {
        return Err("Packages has generated or hidden columns".into());
    }
    let mut stmt = conn.prepare("SELECT blob FROM Packages").map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let (mut blobs, mut total) = (Vec::new(), 0usize);
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        if blobs.len() == MAX_PACKAGES {
            return Err(format!("it lists more than {MAX_PACKAGES} packages"));
        }
        let blob: Vec<u8> = row.get(0).map_err(|e| e.to_string())?;
        total += blob.len();
        if total > MAX_TOTAL_BYTES {
            return Err(format!("its headers exceed {} MiB", MAX_TOTAL_BYTES >> 20));
        }
        blobs.push(blob);
    }
    Ok(blobs)
}

/// Warnings about parts of a database skipped, the first few in full: a
/// hostile file can damage every one of its thousands of items.
#[derive(Default)]
pub(crate) struct Skipped {
    warnings: Vec<String>,
    more: usize,
}

impl Skipped {
    const SHOWN: usize = 20;

    pub(crate) fn push(&mut self, warning: String) {
        if self.warnings.len() < Self::SHOWN {
            self.warnings.push(warning);
        } else {
            self.more += 1;
        }
    }

    pub(crate) fn into_warnings(mut self) -> Vec<String> {
        if self.more > 0 {
            self.warnings
                .push(format!("{} more damaged entries were skipped", self.more));
        }
        self.warnings
    }
}

/// The installed packages in an `rpmdb.sqlite`.
pub fn parse_sqlite(bytes: &[u8]) -> Parsed {
    let read = read_headers(bytes).map(|blobs| (blobs.into_iter().map(Cow::Owned).collect(), Vec::new()));
    from_blobs(read, "rpmdb.sqlite is not a readable rpm database")
}

/// Header blobs a database held, with what reading it skipped.
pub(crate) type Blobs<'a> = (Vec<Cow<'a, [u8]>>, Vec<String>);

/// The packages in what a database reader returned, or one warning
/// (`refused`, then why) when it could not read the database at all.
pub(crate) fn from_blobs(read: Result<Blobs<'_>, String>, refused: &str) -> Parsed {
    match read {
        Ok((blobs, warnings)) => packages(blobs, warnings),
        Err(e) => Parsed {
            packages: Vec::new(),
            warnings: vec![format!("{refused}: {e}")],
        },
    }
}

/// The packages in header blobs, whatever database they came from;
/// `warnings` are what reading the database already found.
fn packages<'a>(blobs: impl IntoIterator<Item = Cow<'a, [u8]>>, warnings: Vec<String>) -> Parsed {
    let mut out = Parsed {
        packages: Vec::new(),
        warnings,
    };
    for (i, blob) in blobs.into_iter().enumerate() {
        let Some(h) = parse_header(&blob) else {
            out.warnings.push(format!("rpm header {} is malformed; skipped", i + 1));
            continue;
        };
        let (Some(name), Some(version), Some(release)) = (h.name, h.version, h.release) else {
            out.warnings
                .push(format!("rpm header {} has no name, version or release; skipped", i + 1));
            continue;
        };
        // The keys rpm keeps for signature checking are not software.
        if name == "gpg-pubkey" {
            continue;
        }
        let evr = match h.epoch {
            Some(e) => format!("{e}:{version}-{release}"),
            None => format!("{version}-{release}"),
        };
        out.packages.push(Package {
            ecosystem: Ecosystem::Rpm,
            // Red Hat style advisories (AlmaLinux, Rocky) list binary packages.
            source_name: name.clone(),
            source_version: evr.clone(),
            name,
            version: evr,
            architecture: h.arch,
            license: h.license,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header blob laid out as rpm writes it into its database.
    pub(crate) fn header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut data = Vec::new();
        let mut index = Vec::new();
        for (tag, s) in strings {
            index.push((*tag, TYPE_STRING, data.len() as u32, 1u32));
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        if let Some(e) = epoch {
            while data.len() % 4 != 0 {
                data.push(0);
            }
            index.push((EPOCH, TYPE_INT32, data.len() as u32, 1));
            data.extend_from_slice(&e.to_be_bytes());
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset, count) in index {
            for v in [tag, kind, offset, count] {
                blob.extend_from_slice(&v.to_be_bytes());
            }
        }
        blob.extend_from_slice(&data);
        blob
    }

    /// An rpmdb.sqlite with these header blobs, as bytes.
    pub(crate) fn rpmdb(blobs: &[Vec<u8>]) -> Vec<u8> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
            .unwrap();
        for b in blobs {
            conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [b]).unwrap();
        }
        conn.serialize(DatabaseName::Main).unwrap().to_vec()
    }

    /// A database built by running `schema` (and `fill`, in one transaction).
    fn db_from(schema: &str, fill: impl Fn(&Connection)) -> Vec<u8> {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(schema).unwrap();
        let tx = conn.transaction().unwrap();
        fill(&tx);
        tx.commit().unwrap();
        conn.serialize(DatabaseName::Main).unwrap().to_vec()
    }

    /// Databases a few KiB long that would make endless or huge rows, or
    /// too many: each is refused with a warning, no package and no panic.
    #[test]
    fn hostile_databases_are_refused_within_bounds() {
        let openssl = openssl_libs();
        let none = |_: &Connection| {};
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "recursive view of endless 50 MB rows",
                db_from(
                    "CREATE VIEW Packages AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
                     SELECT n AS hnum, zeroblob(50000000) AS blob FROM r",
                    none,
                ),
                "not a plain table",
            ),
            (
                "view spelled in lower case",
                db_from("CREATE VIEW packages AS SELECT 1 AS hnum, x'00' AS blob", none),
                "not a plain table",
            ),
            (
                "generated column",
                db_from(
                    "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, n INT, blob BLOB AS (zeroblob(n)) VIRTUAL)",
                    |c| {
                        c.execute("INSERT INTO Packages (n) VALUES (50000000)", []).unwrap();
                    },
                ),
                "generated",
            ),
            (
                "no Packages at all",
                db_from("CREATE TABLE Other (x INT)", none),
                "no Packages table",
            ),
            (
                "header larger than any real one",
                db_from("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)", |c| {
                    c.execute("INSERT INTO Packages (blob) VALUES (zeroblob(9000000))", [])
                        .unwrap();
                }),
                "too big",
            ),
            (
                "more rows than any real database",
                db_from("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)", |c| {
                    let mut stmt = c.prepare("INSERT INTO Packages (blob) VALUES (?1)").unwrap();
                    for _ in 0..=MAX_PACKAGES {
                        stmt.execute([&openssl]).unwrap();
                    }
                }),
                "more than 100000 packages",
            ),
        ];
        for (what, db, why) in cases {
            let p = parse_sqlite(&db);
            assert!(p.packages.is_empty(), "{what}");
            assert!(
                p.warnings.len() == 1 && p.warnings[0].contains(why),
                "{what}: {:?}",
                p.warnings
            );
        }
    }

    pub(crate) fn openssl_libs() -> Vec<u8> {
        header(
            &[
                (NAME, "openssl-libs"),
                (VERSION, "3.0.1"),
                (RELEASE, "41.el9_0"),
                (LICENSE, "ASL 2.0"),
                (ARCH, "x86_64"),
                (SOURCERPM, "openssl-3.0.1-41.el9_0.src.rpm"),
            ],
            Some(1),
        )
    }

    #[test]
    fn rpmdb_sqlite_headers() {
        let db = rpmdb(&[
            openssl_libs(),
            header(
                &[
                    (NAME, "bash"),
                    (VERSION, "5.1.8"),
                    (RELEASE, "6.el9_1"),
                    (ARCH, "x86_64"),
                ],
                None,
            ),
            header(
                &[(NAME, "gpg-pubkey"), (VERSION, "b86b3716"), (RELEASE, "61e69f29")],
                None,
            ),
            header(&[(NAME, "no-version")], None),
            b"\x00\x00\xff\xff garbage".to_vec(),
        ]);
        let p = parse_sqlite(&db);
        let got = summary(&p);
        assert_eq!(
            got,
            [
                ("openssl-libs", "1:3.0.1-41.el9_0", Some("x86_64"), Some("ASL 2.0")),
                ("bash", "5.1.8-6.el9_1", Some("x86_64"), None)
            ]
        );
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        // As rpm leaves it on disk: the header says WAL mode.
        let mut wal = db.clone();
        wal[18] = 2;
        wal[19] = 2;
        assert_eq!(parse_sqlite(&wal).packages, p.packages);
        let p = parse_sqlite(b"SQLite format 3\x00 but then nothing");
        assert!(p.packages.is_empty() && p.warnings[0].contains("not a readable rpm database"));
    }

    #[test]
    fn hostile_headers_are_refused() {
        let good = openssl_libs();
        assert!(parse_header(&good).is_some());
        for cut in [0, 4, 8, 20, good.len() - 1] {
            // Truncations either fail or lose the strings they cut into; never panic.
            let _ = parse_header(&good[..cut]);
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge).is_none());
        let mut bad_offset = good.clone();
        bad_offset[16..20].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert_eq!(parse_header(&bad_offset).unwrap().name, None);
    }

    /// Name, version, arch and license of each package, in database order.
    fn summary(p: &Parsed) -> Vec<(&str, &str, Option<&str>, Option<&str>)> {
        p.packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.architecture.as_deref(),
                    p.license.as_deref(),
                )
            })
            .collect()
    }

    /// A way to damage a database, and what the one warning must then say.
    pub(crate) type Damage = (&'static str, Box<dyn Fn(&mut Vec<u8>)>, &'static str);

    /// Each damage done to a copy of `good` leaves `remaining` packages
    /// and one warning saying why.
    pub(crate) fn check_damage(good: &[u8], parse: fn(&[u8]) -> Parsed, cases: Vec<Damage>, remaining: usize) {
        for (what, damage, why) in cases {
            let mut db = good.to_vec();
            damage(&mut db);
            let p = parse(&db);
            assert_eq!(p.packages.len(), remaining, "{what}: {:?}", p.packages);
            assert!(
                p.warnings.len() == 1 && p.warnings[0].contains(why),
                "{what}: {:?}",
                p.warnings
            );
        }
    }

    /// A database rpm wrote (`tests/data/rpm`, see `make.sh` there), unzipped.
    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        use std::io::Read;
        let path = format!("{}/tests/data/rpm/{name}.gz", env!("CARGO_MANIFEST_DIR"));
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    /// Name, epoch, version-release, arch, source rpm and license of each
    /// header, sorted by name (each format keeps its own order).
    type Row = (String, Option<u32>, String, String, String, String);

    fn rows<'a>(blobs: impl IntoIterator<Item = Cow<'a, [u8]>>) -> Vec<Row> {
        let mut rows: Vec<Row> = blobs
            .into_iter()
            .map(|b| {
                let h = parse_header(&b).expect("rpm wrote a whole header");
                let text = |s: Option<String>| s.unwrap_or_else(|| "(none)".into());
                (
                    text(h.name),
                    h.epoch,
                    format!("{}-{}", text(h.version), text(h.release)),
                    text(h.arch),
                    text(h.source_rpm),
                    text(h.license),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// The three packages of `tests/data/rpm/specs`, as `rpm -qa` printed
    /// them from each database when make.sh wrote it.
    #[test]
    fn databases_written_by_rpm_in_every_format() {
        let want: Vec<Row> = [
            (
                "portcullis-big",
                None,
                "20240101-7.el8",
                "x86_64",
                "portcullis-big-20240101-7.el8.src.rpm",
                "ASL 2.0",
            ),
            (
                "portcullis-epoch",
                Some(2),
                "3.4.5-6.el8_9",
                "x86_64",
                "portcullis-epoch-3.4.5-6.el8_9.src.rpm",
                "GPLv2+ and BSD",
            ),
            (
                "portcullis-tiny",
                None,
                "1.0-1",
                "noarch",
                "portcullis-tiny-1.0-1.src.rpm",
                "MIT",
            ),
        ]
        .iter()
        .map(|(n, e, vr, a, s, l)| {
            (
                n.to_string(),
                *e,
                vr.to_string(),
                a.to_string(),
                s.to_string(),
                l.to_string(),
            )
        })
        .collect();
        let cases: [(&str, Format, fn(&[u8]) -> Vec<Row>); 4] = [
            ("rpmdb.sqlite", Format::Sqlite, |b| {
                rows(read_headers(b).unwrap().into_iter().map(Cow::Owned))
            }),
            ("Packages", Format::BerkeleyDb, |b| rows(bdb::read_blobs(b).unwrap().0)),
            ("Packages-be64k", Format::BerkeleyDb, |b| {
                rows(bdb::read_blobs(b).unwrap().0)
            }),
            ("Packages.db", Format::Ndb, |b| rows(ndb::read_blobs(b).unwrap().0)),
        ];
        for (name, format, headers) in cases {
            let bytes = fixture(name);
            assert_eq!(headers(&bytes), want, "{name}");
            let parsed = parse_database(format, &bytes);
            assert!(parsed.warnings.is_empty(), "{name}: {:?}", parsed.warnings);
            let mut got = summary(&parsed);
            got.sort();
            assert_eq!(
                got,
                [
                    ("portcullis-big", "20240101-7.el8", Some("x86_64"), Some("ASL 2.0")),
                    (
                        "portcullis-epoch",
                        "2:3.4.5-6.el8_9",
                        Some("x86_64"),
                        Some("GPLv2+ and BSD")
                    ),
                    ("portcullis-tiny", "1.0-1", Some("noarch"), Some("MIT")),
                ],
                "{name}"
            );
            assert!(parsed
                .packages
                .iter()
                .all(|p| p.ecosystem == Ecosystem::Rpm && p.source_name == p.name));
        }
    }

    /// Each database read as another format is refused with a warning.
    #[test]
    fn a_database_in_another_format_is_refused() {
        let formats = [
            ("rpmdb.sqlite", Format::Sqlite),
            ("Packages", Format::BerkeleyDb),
            ("Packages.db", Format::Ndb),
        ];
        for (name, _) in formats {
            let bytes = fixture(name);
            for (other, format) in formats.iter().filter(|(n, _)| *n != name) {
                let p = parse_database(*format, &bytes);
                assert!(
                    p.packages.is_empty() && p.warnings.len() == 1,
                    "{name} as {other}: {p:?}"
                );
                assert!(p.warnings[0].contains("not a readable"), "{name} as {other}: {p:?}");
            }
        }
        assert_eq!(database_format("var/lib/rpm/Packages"), Some(Format::BerkeleyDb));
        assert_eq!(database_format("usr/lib/sysimage/rpm/Packages.db"), Some(Format::Ndb));
        assert_eq!(database_format("var/lib/rpm/rpmdb.sqlite"), Some(Format::Sqlite));
        assert_eq!(database_format("var/lib/rpm/Name"), None);
    }
}
