//! The whole database in one file, for registries no network reaches
//! (issue 20 §4, air-gapped transfer).
//!
//! `db export` writes the generation in force as a zstd-compressed tar:
//! first a manifest ([`MANIFEST_NAME`], JSON: format version, generation,
//! when the data was last known current, and per source its name, record
//! counts, import time and the SHA-256 and size of its file), then each
//! source's stored file (`sources/<n>.jsonl.zst`, the zstd JSON Lines a
//! generation keeps) byte for byte. Nothing else: the index is rebuilt on
//! the other side, never trusted.
//!
//! Importing one (`db import` tells it by its content) makes ONE new
//! generation that replaces every source, keeps each source's original
//! import time and dates the generation by the exporter's freshness, so
//! the freshness rules judge the data's age, not the transfer's. The file
//! is untrusted until every check passed: members must come in the
//! manifest's order under its exact names as plain files of its sizes
//! (anything else, a link, a path, a second manifest, a trailing member,
//! is refused, and no member name ever becomes a path), each file's
//! SHA-256 and record count must match, and decompressed bytes, member
//! sizes, the manifest and every record are bounded. A refusal removes the
//! half-built generation: the previous one stays in force.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use portcullis_oci::{Digest, DigestHasher};
use portcullis_scan::osv::Advisory;
use serde::{Deserialize, Serialize};

use crate::input::Counted;
use crate::{
    index, io_err, sources::unix_now, ImportReport, Limits, Progress, SourceReport, SourceStatus, Status, VulnDb,
    VulnDbError,
};

/// What the manifest's `format` says.
pub const EXPORT_FORMAT: &str = "portcullis-vulndb-export";
/// The manifest version this Portcullis writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// The archive's first member.
pub const MANIFEST_NAME: &str = "portcullis-vulndb.json";
/// The OCI `artifactType` of a pushed export (`db push`, `db pull`).
pub const ARTIFACT_TYPE: &str = "application/vnd.portcullis.vulndb.v1";
/// The media type of its one layer: the export file.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.portcullis.vulndb.layer.v1.tar+zstd";
/// Sources one export may carry.
pub const MAX_EXPORT_SOURCES: usize = 4096;
/// The manifest: about 400 bytes a source.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The archive's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportManifest {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`] when written by this Portcullis.
    pub version: u32,
    /// The exporter's generation.
    pub generation: u64,
    /// Unix seconds: when the exporter made that generation, and when its
    /// data was last known current (its import, or a later update in which
    /// every source succeeded). The importer dates its generation by `fresh_at`.
    pub imported_at: u64,
    pub fresh_at: u64,
    pub exported_at: u64,
    /// `portcullis <version>`.
    pub exported_by: String,
    pub sources: Vec<ExportedSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedSource {
    pub name: String,
    /// As [`SourceStatus::format`].
    pub format: String,
    /// Records in force (a later record of the same id replaces an earlier one).
    pub records: u64,
    pub rejected: u64,
    /// Unix seconds of the source's own import on the exporting side.
    pub imported_at: u64,
    /// Where the exporter imported it from.
    pub origin: String,
    /// Its member: `sources/<n>.jsonl.zst`.
    pub file: String,
    pub size: u64,
    /// `sha256:<hex>` of the member's bytes.
    pub sha256: String,
}

fn member_name(i: usize) -> String {
    format!("sources/{i}.jsonl.zst")
}

/// Whether `path` is a file [`VulnDb::export`] wrote: zstd whose first
/// bytes decompress to a tar header naming [`MANIFEST_NAME`]. Reads at
/// most a few KiB.
pub fn is_export(path: &Path) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != [0x28, 0xb5, 0x2f, 0xfd] {
        return false;
    }
    let Ok(file) = File::open(path) else { return false };
    let Ok(decoder) = zstd::stream::read::Decoder::new(file) else {
        return false;
    };
    let mut head = Vec::with_capacity(512);
    if decoder.take(512).read_to_end(&mut head).is_err() || head.len() < 512 {
        return false;
    }
    let name_end = head[..100].iter().position(|b| *b == 0).unwrap_or(100);
    &head[..name_end] == MANIFEST_NAME.as_bytes() && &head[257..262] == b"ustar"
}

fn unreadable(path: &str, why: impl Into<String>) -> VulnDbError {
    VulnDbError::Unreadable {
        path: path.to_string(),
        why: why.into(),
    }
}

/// A writer (or reader) that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: DigestHasher,
    bytes: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: portcullis_oci::Algorithm::Sha256.hasher(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Hashing<io::Sink> {
    /// Hashes what is read from `from`.
    fn reading<R: Read>(self, from: R) -> HashingReader<R> {
        HashingReader {
            inner: from,
            hash: self,
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hash: Hashing<io::Sink>,
}

impl<R> HashingReader<R> {
    fn finish(self) -> (u64, Digest) {
        (self.hash.bytes, self.hash.hasher.finish())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A tar header for a member of the export: a plain file, owned by no one,
/// dated `mtime`.
fn header(name: &str, size: u64, mtime: u64) -> Result<tar::Header, io::Error> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

impl VulnDb {
    /// Writes the generation in force to `out` (through `<out>.partial`,
    /// renamed when whole) and returns its manifest. The source files are
    /// opened before they are read, so an import that replaces the
    /// generation meanwhile does not tear the export.
    pub fn export(&self, out: &Path) -> Result<ExportManifest, VulnDbError> {
        let (status, files) = self.open_current_sources()?;
        let fresh_at = self.fresh_at()?.unwrap_or(status.imported_at);
        let mut sources = Vec::with_capacity(files.len());
        let mut opened = Vec::with_capacity(files.len());
        for (i, (source, mut file)) in status.sources.iter().zip(files).enumerate() {
            let path = self.dir().join(status.generation.to_string()).join(&source.file);
            let mut hashing = Hashing::new(io::sink());
            io::copy(&mut file, &mut hashing).map_err(io_err(&path))?;
            file.rewind().map_err(io_err(&path))?;
            sources.push(ExportedSource {
                name: source.name.clone(),
                format: source.format.clone(),
                records: source.records,
                rejected: source.rejected,
                imported_at: source.imported_at,
                origin: source.origin.clone(),
                file: member_name(i),
                size: hashing.bytes,
                sha256: hashing.hasher.finish().to_string(),
            });
            opened.push((path, file));
        }
        let now = unix_now();
        let manifest = ExportManifest {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            generation: status.generation,
            imported_at: status.imported_at,
            fresh_at,
            exported_at: now,
            exported_by: concat!("portcullis ", env!("CARGO_PKG_VERSION")).into(),
            sources,
        };
        let partial = PathBuf::from(format!("{}.partial", out.display()));
        let written = (|| -> io::Result<()> {
            let file = File::create(&partial)?;
            let encoder = zstd::stream::write::Encoder::new(file, 3)?;
            let mut tar = tar::Builder::new(encoder);
            let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
            tar.append(&header(MANIFEST_NAME, json.len() as u64, now)?, json.as_slice())?;
            for (source, (path, file)) in manifest.sources.iter().zip(opened) {
                // Exactly the bytes hashed (a generation's files never
                // change; a short read would tear the archive).
                let mut body = Hashing::new(io::sink()).reading(file.take(source.size));
                tar.append(&header(&source.file, source.size, now)?, &mut body)?;
                let (bytes, digest) = body.finish();
                if bytes != source.size || digest.as_str() != source.sha256 {
                    return Err(io::Error::other(format!(
                        "{} changed while it was exported",
                        path.display()
                    )));
                }
            }
            let encoder = tar.into_inner()?;
            let file = encoder.finish()?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&partial);
            return Err(io_err(out)(e));
        }
        fs::rename(&partial, out).map_err(io_err(out))?;
        Ok(manifest)
    }

    /// The status in force and its source files, opened; tried again when
    /// an import removed the generation between the two reads.
    fn open_current_sources(&self) -> Result<(Status, Vec<File>), VulnDbError> {
        let mut last = None;
        for _ in 0..3 {
            let Some(status) = self.status()? else {
                return Err(VulnDbError::NoDatabase(self.dir().to_path_buf()));
            };
            let dir = self.dir().join(status.generation.to_string());
            let opened: Result<Vec<File>, _> = status
                .sources
                .iter()
                .map(|s| {
                    let path = dir.join(&s.file);
                    File::open(&path).map_err(io_err(&path))
                })
                .collect();
            match opened {
                Ok(files) => return Ok((status, files)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    /// Imports a file [`VulnDb::export`] wrote as one new generation that
    /// replaces every source (see the module comment); the previous
    /// generation stays in force when anything does not check out.
    pub fn import_export(
        &self,
        path: &Path,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<(ImportReport, ExportManifest), VulnDbError> {
        self.import_export_from(path, &path.display().to_string(), limits, progress)
    }

    /// [`VulnDb::import_export`] of a file that came from `shown` (a
    /// pulled artifact's reference), which errors and origins name.
    pub(crate) fn import_export_from(
        &self,
        path: &Path,
        shown: &str,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<(ImportReport, ExportManifest), VulnDbError> {
        let shown = shown.to_string();
        let file = File::open(path).map_err(|e| unreadable(&shown, e.to_string()))?;
        let total = file.metadata().map_or(0, |m| m.len());
        let _lock = self.lock()?;
        let previous = self.status()?;
        let (generation, building) = self.begin_generation(previous.as_ref())?;
        progress.start(&crate::source_name(path), total);
        let built = self.build_from_export(file, &shown, generation, &building, limits, progress);
        progress.finish();
        let (status, report, manifest) = match built {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_dir_all(&building);
                return Err(e);
            }
        };
        self.switch_to(&building, &status)?;
        // What the updater knew described the sources just replaced: its
        // validators would answer "not modified" for data no longer here,
        // and its last success would make this older data look current.
        self.change_state(|state| {
            state.updated_at = None;
            state.sources.values_mut().for_each(crate::SourceState::forget_version);
        })?;
        Ok((report, manifest))
    }

    fn build_from_export(
        &self,
        file: File,
        shown: &str,
        generation: u64,
        building: &Path,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<(Status, ImportReport, ExportManifest), VulnDbError> {
        let broken = |e: io::Error| unreadable(shown, e.to_string());
        let mut archive = open_archive(Counted { inner: file, progress }, shown, limits)?;
        // Raw: extension headers (long names, PAX) are members like any
        // other, refused below, never read into memory by the tar crate.
        let mut entries = archive.entries().map_err(broken)?.raw(true);
        let manifest = manifest_member(&mut entries, shown, limits)?;

        let mut writer = index::IndexWriter::create(&building.join(index::FILE), None)?;
        let mut sources = Vec::with_capacity(manifest.sources.len());
        let mut reports = Vec::with_capacity(manifest.sources.len());
        for (i, source) in manifest.sources.iter().enumerate() {
            let fail = |why: String| unreadable(shown, format!("source {:?} ({}): {why}", source.name, source.file));
            let mut entry = next_member(&mut entries, shown, &source.file, source.size)?;
            if entry.size() != source.size {
                return Err(fail(format!(
                    "{} bytes, the manifest says {}",
                    entry.size(),
                    source.size
                )));
            }
            let stored = format!("source-{i}.jsonl.zst");
            let path = building.join(&stored);
            let out = File::create(&path).map_err(io_err(&path))?;
            let mut hashing = Hashing::new(out);
            io::copy(&mut entry, &mut hashing).map_err(broken)?;
            drop(entry);
            if hashing.bytes != source.size {
                return Err(fail(format!("the archive ends after {} bytes", hashing.bytes)));
            }
            let digest = hashing.hasher.finish();
            if digest.as_str() != source.sha256 {
                return Err(fail(format!(
                    "its sha256 is {digest}, the manifest says {}: the export was altered or damaged",
                    source.sha256
                )));
            }
            hashing.inner.sync_all().map_err(io_err(&path))?;
            writer.begin_source(&source.name)?;
            let (mut added, mut duplicates) = (0u64, 0u64);
            read_untrusted(&path, limits, &mut |line_no, advisory| {
                let advisory = advisory.map_err(|why| fail(format!("record {line_no}: {why}")))?;
                if writer.add(&advisory)? {
                    duplicates += 1;
                } else {
                    added += 1;
                }
                Ok(())
            })
            .map_err(|e| match e {
                ReadError::Io(why) => fail(why),
                ReadError::Stop(e) => e,
            })?;
            if added != source.records {
                return Err(fail(format!("{added} records, the manifest says {}", source.records)));
            }
            sources.push(SourceStatus {
                name: source.name.clone(),
                origin: format!("{shown}!{}", source.origin),
                records: added,
                rejected: source.rejected,
                imported_at: source.imported_at,
                format: source.format.clone(),
                file: stored,
            });
            reports.push(SourceReport {
                name: source.name.clone(),
                format: source.format.clone(),
                records: added,
                rejected_count: source.rejected,
                rejected: Vec::new(),
                duplicates,
            });
        }
        if let Some(extra) = entries.next() {
            let what = extra
                .map(|e| String::from_utf8_lossy(&e.path_bytes()).into_owned())
                .unwrap_or_else(|e| e.to_string());
            return Err(unreadable(
                shown,
                format!("a member the manifest does not list ({what:?})"),
            ));
        }
        writer.finish()?;
        let status = Status {
            generation,
            imported_at: manifest.fresh_at,
            sources,
        };
        let report = ImportReport {
            generation,
            sources: reports,
            kept: Vec::new(),
        };
        Ok((status, report, manifest))
    }
}

/// The tar inside an export's zstd, decompressed bytes bounded.
fn open_archive<'a, R: Read + 'a>(
    raw: R,
    shown: &str,
    limits: &Limits,
) -> Result<tar::Archive<impl Read + 'a>, VulnDbError> {
    let broken = |e: io::Error| unreadable(shown, e.to_string());
    let mut raw = BufReader::new(raw);
    if !raw.fill_buf().map_err(broken)?.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(unreadable(shown, "not a database export (not zstd)"));
    }
    let decoded = portcullis_scan::decompress::open(raw, limits.max_input_bytes).map_err(broken)?;
    Ok(tar::Archive::new(decoded))
}

/// The first member, the manifest, read (bounded) and checked.
fn manifest_member<R: Read>(
    entries: &mut tar::Entries<'_, R>,
    shown: &str,
    limits: &Limits,
) -> Result<ExportManifest, VulnDbError> {
    let mut entry = next_member(entries, shown, MANIFEST_NAME, MAX_MANIFEST_BYTES)?;
    let mut json = Vec::new();
    entry
        .read_to_end(&mut json)
        .map_err(|e| unreadable(shown, e.to_string()))?;
    let manifest: ExportManifest =
        serde_json::from_slice(&json).map_err(|e| unreadable(shown, format!("{MANIFEST_NAME} does not read: {e}")))?;
    check_manifest(&manifest, limits).map_err(|why| unreadable(shown, format!("{MANIFEST_NAME}: {why}")))?;
    Ok(manifest)
}

/// The manifest of the export in `path` (what `db push --file` says of
/// it), read and checked without reading the rest.
pub fn read_export_manifest(path: &Path, limits: &Limits) -> Result<ExportManifest, VulnDbError> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| unreadable(&shown, e.to_string()))?;
    let mut archive = open_archive(file, &shown, limits)?;
    let mut entries = archive
        .entries()
        .map_err(|e| unreadable(&shown, e.to_string()))?
        .raw(true);
    manifest_member(&mut entries, &shown, limits)
}

/// The next member, which must be a plain file named exactly `want` of
/// at most `max` bytes.
fn next_member<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
    shown: &str,
    want: &str,
    max: u64,
) -> Result<tar::Entry<'a, R>, VulnDbError> {
    let entry = match entries.next() {
        Some(e) => e.map_err(|e| unreadable(shown, e.to_string()))?,
        None => return Err(unreadable(shown, format!("the archive ends before {want}"))),
    };
    check_member(&entry, want, max).map_err(|why| unreadable(shown, why))?;
    Ok(entry)
}

fn check_member<R: Read>(entry: &tar::Entry<'_, R>, want: &str, max: u64) -> Result<(), String> {
    let name = entry.path_bytes();
    if name.as_ref() != want.as_bytes() {
        return Err(format!(
            "member {:?} where {want} should be",
            String::from_utf8_lossy(&name)
        ));
    }
    let kind = entry.header().entry_type();
    if kind != tar::EntryType::Regular {
        return Err(format!("member {want} is a {kind:?}, not a file"));
    }
    if entry.size() > max {
        return Err(format!(
            "member {want} is {} bytes, over its limit of {max}",
            entry.size()
        ));
    }
    Ok(())
}

/// What a manifest must say before anything it lists is read.
fn check_manifest(m: &ExportManifest, limits: &Limits) -> Result<(), String> {
    if m.format != EXPORT_FORMAT {
        return Err(format!("format {:?}, not {EXPORT_FORMAT}", m.format));
    }
    if m.version == 0 || m.version > EXPORT_VERSION {
        return Err(format!(
            "version {} (this Portcullis reads version {EXPORT_VERSION}; a newer one wrote it)",
            m.version
        ));
    }
    if m.sources.len() > MAX_EXPORT_SOURCES {
        return Err(format!("{} sources, more than {MAX_EXPORT_SOURCES}", m.sources.len()));
    }
    let mut names = std::collections::HashSet::new();
    for (i, s) in m.sources.iter().enumerate() {
        let plain = !s.name.is_empty() && s.name.len() <= 1024 && !s.name.chars().any(char::is_control);
        if !plain {
            return Err(format!("source {i} has no usable name ({:?})", s.name));
        }
        if !names.insert(s.name.as_str()) {
            return Err(format!("source {:?} is listed twice", s.name));
        }
        if s.file != member_name(i) {
            return Err(format!(
                "source {:?} is in {:?}, not {}",
                s.name,
                s.file,
                member_name(i)
            ));
        }
        if s.size > limits.max_input_bytes {
            return Err(format!(
                "source {:?} is {} bytes, over the input limit of {}",
                s.name, s.size, limits.max_input_bytes
            ));
        }
        let digest: Digest = s
            .sha256
            .parse()
            .map_err(|e| format!("source {:?}: sha256 {:?}: {e}", s.name, s.sha256))?;
        if digest.algorithm() != portcullis_oci::Algorithm::Sha256 {
            return Err(format!("source {:?}: {:?} is not a sha256 digest", s.name, s.sha256));
        }
        for (what, text) in [("origin", &s.origin), ("format", &s.format)] {
            if text.len() > 4096 {
                return Err(format!("source {:?}: its {what} is over 4096 bytes", s.name));
            }
        }
    }
    Ok(())
}

enum ReadError {
    Io(String),
    Stop(VulnDbError),
}

impl From<VulnDbError> for ReadError {
    fn from(e: VulnDbError) -> ReadError {
        ReadError::Stop(e)
    }
}

/// Every record of a source file that came from elsewhere: decompressed
/// bytes bounded by `max_input_bytes`, each line by `max_record_bytes`.
/// `each` gets the line number and the parsed record or why it does not parse.
fn read_untrusted(
    path: &Path,
    limits: &Limits,
    each: &mut dyn FnMut(u64, Result<Advisory, String>) -> Result<(), VulnDbError>,
) -> Result<(), ReadError> {
    let io = |e: io::Error| ReadError::Io(e.to_string());
    let file = File::open(path).map_err(io)?;
    let decoded = portcullis_scan::decompress::open(file, limits.max_input_bytes).map_err(io)?;
    let mut reader = BufReader::with_capacity(256 << 10, decoded);
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(limits.max_record_bytes + 1)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        if line.len() as u64 > limits.max_record_bytes {
            return Err(ReadError::Io(format!(
                "record {line_no} is over the {} byte record limit",
                limits.max_record_bytes
            )));
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(_) => {
                each(line_no, Err("not UTF-8".into()))?;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        each(line_no, Advisory::parse(text).map_err(|e| e.to_string()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{ids, import, shared};
    use crate::NoProgress;

    /// The database in force, as seen from outside: per source its name,
    /// format, records, rejected and import time; and the generation's date.
    fn summary(db: &VulnDb) -> (u64, Vec<(String, String, u64, u64, u64)>) {
        let s = db.status().unwrap().unwrap();
        let sources = s
            .sources
            .iter()
            .map(|x| (x.name.clone(), x.format.clone(), x.records, x.rejected, x.imported_at))
            .collect();
        (s.imported_at, sources)
    }

    /// Makes the generation in force look `secs` older.
    fn age(db: &VulnDb, secs: u64) {
        let generation = fs::read_to_string(db.dir().join("CURRENT")).unwrap();
        let path = db.dir().join(generation.trim()).join("status.json");
        let mut status: Status = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        status.imported_at -= secs;
        for s in &mut status.sources {
            s.imported_at -= secs;
        }
        fs::write(&path, serde_json::to_vec(&status).unwrap()).unwrap();
    }

    /// A database of three sources (one with a rejected record and a
    /// duplicate id), exported.
    fn exported(dir: &Path) -> (VulnDb, PathBuf, ExportManifest) {
        let db = VulnDb::in_data_dir(&dir.join("source"));
        let sample = fs::read_to_string(shared("sample.osv.jsonl")).unwrap();
        let first = sample.lines().next().unwrap();
        let odd = dir.join("odd.jsonl");
        fs::write(&odd, format!("{first}\n{{\"not\": \"osv\"}}\n{first}\n")).unwrap();
        import(&db, &[shared("npm.osv.jsonl.gz"), shared("alpine.osv.jsonl.gz")]).unwrap();
        age(&db, 7200);
        import(&db, &[odd]).unwrap();
        let file = dir.join("vulndb.tar.zst");
        let manifest = db.export(&file).unwrap();
        (db, file, manifest)
    }

    #[test]
    fn an_export_imports_as_the_same_database_with_its_own_dates() {
        let dir = tempfile::tempdir().unwrap();
        let (source, file, manifest) = exported(dir.path());
        assert!(is_export(&file));
        assert!(!is_export(&shared("npm.osv.jsonl.gz")));
        assert!(!is_export(&shared("sample.osv.jsonl")));
        assert_eq!(manifest.sources.len(), 3);
        assert_eq!(manifest.sources[2].records, 1, "{manifest:?}");
        assert_eq!(manifest.sources[2].rejected, 1);

        let target = VulnDb::in_data_dir(&dir.path().join("target"));
        import(&target, &[shared("go.osv.jsonl.gz")]).unwrap();
        // What an updater remembers of the sources about to be replaced.
        target
            .change_state(|s| {
                s.updated_at = Some(unix_now());
                s.sources.insert(
                    "https://example.org/go.json".into(),
                    crate::SourceState {
                        name: "example.org_go.json".into(),
                        etag: Some("\"v1\"".into()),
                        osv_modified: Some("2026-01-01T00:00:00Z".into()),
                        file_version: Some("file:1:2".into()),
                        last_success: Some(1),
                        ..Default::default()
                    },
                );
            })
            .unwrap();
        let report = import(&target, std::slice::from_ref(&file)).unwrap();
        assert!(report.kept.is_empty(), "an export replaces every source");
        assert_eq!(report.sources[2].duplicates, 1);
        assert_eq!(
            summary(&target),
            summary(&source),
            "sources, counts and dates carried over"
        );
        assert_eq!(ids(&target), ids(&source));
        let (status, index) = target.open().unwrap().unwrap();
        assert_eq!(index.len(), source.open().unwrap().unwrap().1.len());
        // Dated by the data, not by the transfer: two hours old on both sides.
        assert_eq!(target.fresh_at().unwrap(), source.fresh_at().unwrap());
        // The updater's knowledge described replaced records: the next update fetches whole.
        let state = target.update_state().unwrap();
        assert_eq!(state.updated_at, None);
        let kept = &state.sources["https://example.org/go.json"];
        assert_eq!(
            (&kept.etag, &kept.osv_modified, &kept.file_version, kept.last_success),
            (&None, &None, &None, Some(1))
        );
        assert!(unix_now() - status.sources[0].imported_at >= 7200);
        assert!(
            status.sources[0].origin.ends_with("npm.osv.jsonl.gz"),
            "{:?}",
            status.sources[0]
        );

        // Importing it alongside another input is refused.
        let e = import(&target, &[file.clone(), shared("npm.osv.jsonl.gz")]).unwrap_err();
        assert!(e.to_string().contains("alone"), "{e}");
    }

    /// Builds a zstd tar of raw members: (name bytes, type, body, claimed size).
    fn archive(members: &[(&[u8], tar::EntryType, &[u8], Option<u64>)]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, kind, body, claimed) in members {
            let mut h = tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_size(claimed.unwrap_or(body.len() as u64));
            h.set_mode(0o644);
            h.set_entry_type(*kind);
            h.set_cksum();
            tar.extend_from_slice(h.as_bytes());
            tar.extend_from_slice(body);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        zstd::encode_all(tar.as_slice(), 3).unwrap()
    }

    fn manifest_for(sources: &[(&str, &[u8], u64)]) -> Vec<u8> {
        let m = ExportManifest {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            generation: 1,
            imported_at: 1,
            fresh_at: 1,
            exported_at: 1,
            exported_by: "test".into(),
            sources: sources
                .iter()
                .enumerate()
                .map(|(i, (name, body, records))| ExportedSource {
                    name: name.to_string(),
                    format: "osv".into(),
                    records: *records,
                    rejected: 0,
                    imported_at: 1,
                    origin: "test".into(),
                    file: member_name(i),
                    size: body.len() as u64,
                    sha256: Digest::sha256_of(body).to_string(),
                })
                .collect(),
        };
        serde_json::to_vec(&m).unwrap()
    }

    /// Every hostile or damaged export is refused with a reason, nothing
    /// is written outside the generation being built, and the database in
    /// force stays.
    #[test]
    fn hostile_and_damaged_exports_are_refused_and_the_database_stays() {
        use tar::EntryType::{Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        let db = VulnDb::in_data_dir(&dir.path().join("data"));
        import(&db, &[shared("npm.osv.jsonl.gz")]).unwrap();
        let before = (db.status().unwrap(), ids(&db));

        let sample = fs::read_to_string(shared("sample.osv.jsonl")).unwrap();
        let records = zstd::encode_all(sample.as_bytes(), 3).unwrap();
        let n = sample.lines().count() as u64;
        let good = manifest_for(&[("sample", &records, n)]);
        let name = MANIFEST_NAME.as_bytes();
        let member = b"sources/0.jsonl.zst".as_slice();
        // It imports when whole (the cases below each break one thing).
        let whole = archive(&[(name, Regular, &good, None), (member, Regular, &records, None)]);

        let mut altered = records.clone();
        let last = altered.len() - 5;
        altered[last] ^= 0xff;
        let traversal = manifest_for(&[("sample", &records, n)]);
        let traversal = String::from_utf8(traversal)
            .unwrap()
            .replace("sources/0.jsonl.zst", "../../escaped");
        let bomb = zstd::encode_all(vec![b'\n'; 4 << 20].as_slice(), 19).unwrap();
        let long_line = zstd::encode_all(
            format!("{{\"id\": \"X\", \"details\": \"{}\"}}\n", "a".repeat(70_000)).as_bytes(),
            3,
        )
        .unwrap();
        let newer = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"version\":1", "\"version\":2");
        let miscounted = manifest_for(&[("sample", &records, n + 1)]);
        let limits = Limits {
            max_input_bytes: 1 << 20,
            max_record_bytes: 64 << 10,
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "a member altered",
                archive(&[(name, Regular, &good, None), (member, Regular, &altered, None)]),
                "sha256",
            ),
            (
                "a path outside",
                archive(&[
                    (name, Regular, &good, None),
                    (b"../../etc/cron.d/x", Regular, &records, None),
                ]),
                "where sources/0.jsonl.zst should be",
            ),
            (
                "an absolute path first",
                archive(&[(b"/etc/passwd", Regular, b"x", None)]),
                "should be",
            ),
            (
                "a manifest naming a path",
                archive(&[
                    (name, Regular, traversal.as_bytes(), None),
                    (member, Regular, &records, None),
                ]),
                "not sources/0.jsonl.zst",
            ),
            (
                "a symbolic link in a member's place",
                archive(&[(name, Regular, &good, None), (member, Symlink, b"", None)]),
                "Symlink",
            ),
            (
                "a long-name extension",
                archive(&[(b"././@LongLink", tar::EntryType::GNULongName, &[b'a'; 600], None)]),
                "should be",
            ),
            (
                "a manifest claiming a terabyte",
                archive(&[(name, Regular, b"", Some(1 << 40))]),
                "over its limit",
            ),
            (
                "a decompression bomb",
                archive(&[
                    (name, Regular, &manifest_for(&[("bomb", &bomb, 0)]), None),
                    (member, Regular, &bomb, None),
                ]),
                "compression bomb",
            ),
            (
                "an archive that expands past the limit",
                archive(&[(name, Regular, &vec![b' '; 2 << 20], None)]),
                "compression bomb",
            ),
            (
                "a record over the limit",
                archive(&[
                    (name, Regular, &manifest_for(&[("long", &long_line, 1)]), None),
                    (member, Regular, &long_line, None),
                ]),
                "record limit",
            ),
            (
                "a member more",
                archive(&[
                    (name, Regular, &good, None),
                    (member, Regular, &records, None),
                    (b"sources/1.jsonl.zst", Regular, &records, None),
                ]),
                "does not list",
            ),
            (
                "a member missing",
                archive(&[(name, Regular, &good, None)]),
                "ends before",
            ),
            (
                "a newer format",
                archive(&[
                    (name, Regular, newer.as_bytes(), None),
                    (member, Regular, &records, None),
                ]),
                "newer",
            ),
            (
                "records miscounted",
                archive(&[(name, Regular, &miscounted, None), (member, Regular, &records, None)]),
                "the manifest says",
            ),
            ("truncated", whole[..whole.len() / 2].to_vec(), ""),
        ];
        for (what, bytes, why) in cases {
            let path = dir.path().join("hostile.tar.zst");
            fs::write(&path, &bytes).unwrap();
            let e = db
                .import_export(&path, &limits, &NoProgress)
                .map(|_| ())
                .expect_err(what);
            assert!(matches!(e, VulnDbError::Unreadable { .. }), "{what}: {e:?}");
            assert!(e.to_string().contains(why), "{what}: {e}");
            assert_eq!(
                (db.status().unwrap(), ids(&db)),
                before,
                "{what}: the database in force changed"
            );
            let leftovers: Vec<_> = fs::read_dir(db.dir())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".building"))
                .collect();
            assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
        }
        assert!(!dir.path().join("escaped").exists() && !dir.path().join("data/escaped").exists());

        let path = dir.path().join("whole.tar.zst");
        fs::write(&path, &whole).unwrap();
        assert!(is_export(&path));
        let (report, _) = db.import_export(&path, &limits, &NoProgress).unwrap();
        assert_eq!(report.sources[0].records, n);
        assert_eq!(db.status().unwrap().unwrap().sources.len(), 1);
    }
}
