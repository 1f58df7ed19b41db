//! Reading vulnerability records out of whatever a user downloaded: one JSON
//! document, a JSON array, JSON Lines, gzip or zstd of any of those, a zip archive
//! (osv.dev's `all.zip`) or a directory tree of such files. What a stream
//! holds (OSV, CVE JSON 5, NVD, Debian's tracker) is told by its content,
//! never by its name; every record reaches the sink as OSV JSON.
//!
//! Inputs are untrusted: decompressed bytes and the size of one record are
//! bounded, so a gzip or zip bomb stops with an error after the limit.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::formats::{self, debian_tracker, nvd, Allowance, Format, Shape, Unrecognised};
use crate::{Progress, VulnDbError};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes one input file (or zip member) may expand to.
    pub max_input_bytes: u64,
    /// The largest single record.
    pub max_record_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 8 << 30,
            max_record_bytes: 32 << 20,
        }
    }
}

/// Called with each record's location and raw text; it decides what is valid.
pub(crate) type Sink<'a> = dyn FnMut(String, Result<&str, String>) + 'a;

/// Names of files that should hold records: in a directory or an archive,
/// such a file that is not JSON is rejected, while any other file that is
/// not JSON (a README, a licence) is passed over.
const RECORD_NAMES: [&str; 6] = [".json", ".jsonl", ".json.gz", ".jsonl.gz", ".json.zst", ".jsonl.zst"];

/// How much of a stream is read to tell its format.
const HEAD_BYTES: usize = 64 << 10;

/// Hands records to the sink and notes which formats they came in.
pub(crate) struct Emit<'s, 'a> {
    sink: &'s mut Sink<'a>,
    formats: BTreeSet<Format>,
}

impl Emit<'_, '_> {
    pub(crate) fn saw(&mut self, format: Format) {
        self.formats.insert(format);
    }

    /// An OSV record, converted from `format`.
    pub(crate) fn record(&mut self, format: Format, location: String, osv: &str) {
        self.formats.insert(format);
        match format {
            Format::Osv => match without_origins(osv) {
                Some(cleaned) => (self.sink)(location, Ok(&cleaned)),
                None => (self.sink)(location, Ok(osv)),
            },
            _ => (self.sink)(location, Ok(osv)),
        }
    }

    pub(crate) fn reject(&mut self, location: String, why: String) {
        (self.sink)(location, Err(why));
    }

    /// One record of a record stream, in whichever format it is.
    fn any(&mut self, location: String, text: &str) {
        match formats::to_osv(text) {
            Ok((format, None)) => self.record(format, location, text),
            Ok((format, Some(osv))) => self.record(format, location, &osv),
            Err(why) => self.reject(location, why),
        }
    }

    /// `osv`, `nvd`, `cve5+osv`…; `none` when nothing was read.
    fn label(&self) -> String {
        if self.formats.is_empty() {
            return "none".into();
        }
        self.formats.iter().map(|f| f.name()).collect::<Vec<_>>().join("+")
    }
}

/// An OSV record as published, less any `database_specific.severity_origins`:
/// only this importer's own conversions of NVD and CVE 5 data may say whose
/// vectors a record carries (those rank above a feed's own), so a feed
/// cannot claim NVD's rank by writing the key itself. `None` when the
/// record has no such key (or is not JSON, which the parser will report).
fn without_origins(osv: &str) -> Option<String> {
    // The key cannot be written without its letters or a `\u` escape.
    if !osv.contains("severity_origins") && !osv.contains("\\u") {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_str(osv).ok()?;
    let removed = value
        .get_mut("database_specific")
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|d| d.remove("severity_origins"));
    removed.map(|_| value.to_string())
}

/// Reads every record of one input, file or directory, and says which
/// formats it held.
pub(crate) fn read_source(
    path: &Path,
    limits: &Limits,
    progress: &dyn Progress,
    sink: &mut Sink<'_>,
) -> Result<String, VulnDbError> {
    let mut emit = Emit {
        sink,
        formats: BTreeSet::new(),
    };
    let files = if path.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files).map_err(|e| unreadable(path, e))?;
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let total: u64 = files.iter().filter_map(|f| fs::metadata(f).ok()).map(|m| m.len()).sum();
    progress.start(&crate::source_name(path), total);
    for file in &files {
        let named = file == path;
        let shown = if named {
            path.display().to_string()
        } else {
            format!(
                "{}/{}",
                path.display(),
                file.strip_prefix(path).unwrap_or(file).display()
            )
        };
        read_file(file, &shown, named, limits, progress, &mut emit)?;
    }
    progress.finish();
    Ok(emit.label())
}

fn unreadable(path: &Path, e: impl ToString) -> VulnDbError {
    VulnDbError::Unreadable {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// The files under `dir`, whatever their names, but not hidden ones (a
/// clone's `.git`); symbolic links are not followed, so a link loop cannot
/// trap the walk.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Why a stream gave no records.
enum StreamError {
    /// The input cannot be trusted (I/O, truncated, a bomb, an entry too large).
    Broken(String),
    Unrecognised(Unrecognised),
}

/// One file: a zip archive's members, or one stream. `named` is a file the
/// user named, which must be in a known format; a file found in a
/// directory need not be.
fn read_file(
    path: &Path,
    shown: &str,
    named: bool,
    limits: &Limits,
    progress: &dyn Progress,
    emit: &mut Emit<'_, '_>,
) -> Result<(), VulnDbError> {
    let fail = |why: String| VulnDbError::Unreadable {
        path: shown.to_string(),
        why,
    };
    let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| fail(e.to_string()))?;
    if magic[..n] == *b"PK\x03\x04" || magic[..n] == *b"PK\x05\x06" {
        let file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let size = file.metadata().map_or(0, |m| m.len());
        let mut archive = zip::ZipArchive::new(file).map_err(|e| fail(format!("not a readable zip archive: {e}")))?;
        for i in 0..archive.len() {
            let member = archive.by_index(i).map_err(|e| fail(format!("zip member {i}: {e}")))?;
            let name = member
                .name()
                .map_err(|e| fail(format!("zip member {i} has a bad name: {e}")))?
                .into_owned();
            if !member.is_file() {
                continue;
            }
            let location = format!("{shown}!{name}");
            match read_stream(member, &location, limits, emit) {
                Ok(()) => {}
                Err(StreamError::Broken(why)) => return Err(fail(why)),
                Err(StreamError::Unrecognised(what)) => passed_over(&name, location, what, emit),
            }
        }
        progress.advance(size);
        return Ok(());
    }
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let counted = Counted { inner: file, progress };
    match read_stream(counted, shown, limits, emit) {
        Ok(()) => Ok(()),
        Err(StreamError::Broken(why)) => Err(fail(why)),
        Err(StreamError::Unrecognised(what)) if named => {
            Err(fail(format!("not a recognised vulnerability format: {}", what.why())))
        }
        Err(StreamError::Unrecognised(what)) => {
            passed_over(&path.to_string_lossy(), shown.to_string(), what, emit);
            Ok(())
        }
    }
}

/// A file in a directory or archive that is in no known format: rejected
/// if it is JSON or named as records, else (a README) left out quietly.
fn passed_over(name: &str, location: String, what: Unrecognised, emit: &mut Emit<'_, '_>) {
    let lower = name.to_ascii_lowercase();
    let named_as_records = RECORD_NAMES.iter().any(|e| lower.ends_with(e));
    match what {
        Unrecognised::NotJson(why) if named_as_records => emit.reject(location, why),
        Unrecognised::NotJson(_) => {}
        Unrecognised::UnknownJson(why) => emit.reject(location, why),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reports raw bytes read to the progress bar.
pub(crate) struct Counted<'a, R> {
    pub(crate) inner: R,
    pub(crate) progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// One stream, compressed (gzip, zstd) or not, read as its first bytes say.
fn read_stream(raw: impl Read, location: &str, limits: &Limits, emit: &mut Emit<'_, '_>) -> Result<(), StreamError> {
    let broken = |e: io::Error| StreamError::Broken(e.to_string());
    let decoded = portcullis_scan::decompress::open(raw, limits.max_input_bytes).map_err(broken)?;
    let mut reader = BufReader::with_capacity(256 * 1024, decoded);
    let (head, blank_lines) = read_head(&mut reader).map_err(broken)?;
    let shape = formats::recognise(&head).map_err(StreamError::Unrecognised)?;
    let stream = Cursor::new(head).chain(reader);
    let allowance = Allowance::new(limits.max_record_bytes);
    let read = match shape {
        Shape::Empty => Ok(()),
        Shape::NvdDocument => nvd::stream(stream, (location, &allowance), emit),
        Shape::DebianTracker => debian_tracker::stream(stream, (location, &allowance), emit),
        Shape::Records => read_records(stream, location, limits, blank_lines, emit),
    };
    read.map_err(StreamError::Broken)
}

/// The first bytes of a stream after any byte order mark and whitespace,
/// and how many lines that whitespace spanned.
fn read_head(reader: &mut impl BufRead) -> io::Result<(Vec<u8>, u64)> {
    let mut head = Vec::new();
    let mut lines = 0u64;
    let mut at_start = true;
    while head.len() < HEAD_BYTES {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        if head.is_empty() {
            let bom = if at_start && buf.starts_with(b"\xef\xbb\xbf") {
                3
            } else {
                0
            };
            at_start = false;
            let blank = buf[bom..].iter().take_while(|b| b.is_ascii_whitespace()).count();
            if bom + blank > 0 {
                lines += buf[bom..bom + blank].iter().filter(|&&b| b == b'\n').count() as u64;
                reader.consume(bom + blank);
                continue;
            }
        }
        let take = buf.len().min(HEAD_BYTES - head.len());
        head.extend_from_slice(&buf[..take]);
        reader.consume(take);
    }
    Ok((head, lines))
}

/// A stream of records: JSON Lines, one JSON document, or a JSON array.
/// `Err` is a reason the whole input cannot be trusted (I/O, truncated
/// compression, a bomb); a bad record is rejected and the rest read.
fn read_records(
    mut reader: impl BufRead,
    location: &str,
    limits: &Limits,
    blank_lines: u64,
    emit: &mut Emit<'_, '_>,
) -> Result<(), String> {
    let mut line_no = blank_lines;
    let mut first: Option<Vec<u8>> = None;
    // The first non-blank line tells the shape: a whole JSON value on one
    // line means JSON Lines; `[` or an incomplete value means one document.
    while let Some(line) = next_line(&mut reader, limits.max_record_bytes, &mut line_no)? {
        let Some(line) = line else {
            let why = format!("a record over the {} byte limit", limits.max_record_bytes);
            emit.reject(format!("{location}:{line_no}"), why);
            continue;
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            emit.reject(format!("{location}:{line_no}"), "not UTF-8".into());
            continue;
        };
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        if first.is_none() && (text.trim_start().starts_with('[') || !is_complete_json(text)) {
            first = Some(line.clone());
            break;
        }
        emit.any(format!("{location}:{line_no}"), text);
        first = Some(Vec::new());
    }
    let Some(head) = first.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    // One document: the rest of the stream belongs to it.
    let mut doc = head;
    (&mut reader)
        .take(limits.max_record_bytes.saturating_sub(doc.len() as u64) + 1)
        .read_to_end(&mut doc)
        .map_err(|e| e.to_string())?;
    if doc.len() as u64 > limits.max_record_bytes {
        return Err(format!(
            "a single JSON document over the {} byte record limit",
            limits.max_record_bytes
        ));
    }
    let text = String::from_utf8_lossy(&doc);
    let text = text.trim_start_matches('\u{feff}');
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<serde_json::Value>>(text) {
            Ok(items) => {
                for (i, item) in items.iter().enumerate() {
                    emit.any(format!("{location}[{i}]"), &item.to_string());
                }
            }
            Err(e) => emit.reject(location.to_string(), format!("not a JSON array of records: {e}")),
        }
    } else {
        emit.any(location.to_string(), text);
    }
    Ok(())
}

fn is_complete_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The next line, without its newline; `Some(None)` for a line over `max`
/// bytes, which is consumed without being kept.
fn next_line(reader: &mut impl BufRead, max: u64, line_no: &mut u64) -> Result<Option<Option<Vec<u8>>>, String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(max + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    *line_no += 1;
    if line.len() as u64 > max && line.last() != Some(&b'\n') {
        // Skip to the end of this over-long line.
        loop {
            let buf = reader.fill_buf().map_err(|e| e.to_string())?;
            if buf.is_empty() {
                break;
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    reader.consume(i + 1);
                    break;
                }
                None => {
                    let len = buf.len();
                    reader.consume(len);
                }
            }
        }
        return Ok(Some(None));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Some(Some(line)))
}
