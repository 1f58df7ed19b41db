//! Reading OSV records out of whatever a user downloaded: one JSON
//! document, a JSON array, JSON Lines, gzip or zstd of any of those, a zip archive
//! (osv.dev's `all.zip`) or a directory tree of such files.
//!
//! Inputs are untrusted: decompressed bytes and the size of one record are
//! bounded, so a gzip or zip bomb stops with an error after the limit.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

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

const EXTENSIONS: [&str; 5] = [".json", ".jsonl", ".json.gz", ".jsonl.gz", ".zip"];

/// Reads every record of one input, file or directory.
pub(crate) fn read_source(
    path: &Path,
    limits: &Limits,
    progress: &dyn Progress,
    sink: &mut Sink<'_>,
) -> Result<(), VulnDbError> {
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
        let shown = if file == path {
            path.display().to_string()
        } else {
            format!(
                "{}/{}",
                path.display(),
                file.strip_prefix(path).unwrap_or(file).display()
            )
        };
        read_file(file, &shown, limits, progress, sink)?;
    }
    progress.finish();
    Ok(())
}

fn unreadable(path: &Path, e: impl ToString) -> VulnDbError {
    VulnDbError::Unreadable {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Files with an OSV-ish extension under `dir`; symbolic links are not
/// followed, so a link loop cannot trap the walk.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if EXTENSIONS.iter().any(|e| name.ends_with(e)) {
                out.push(path);
            }
        }
    }
    Ok(())
}

fn read_file(
    path: &Path,
    shown: &str,
    limits: &Limits,
    progress: &dyn Progress,
    sink: &mut Sink<'_>,
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
            let lower = name.to_ascii_lowercase();
            if !member.is_file() || !EXTENSIONS[..4].iter().any(|e| lower.ends_with(e)) {
                continue;
            }
            read_stream(member, &format!("{shown}!{name}"), limits, sink).map_err(fail)?;
        }
        progress.advance(size);
        return Ok(());
    }
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let counted = Counted { inner: file, progress };
    read_stream(counted, shown, limits, sink).map_err(fail)
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
struct Counted<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// One stream of records, compressed (gzip, zstd) or not. `Err` is a reason the
/// whole input cannot be trusted (I/O, truncated compression, a bomb);
/// a bad record is handed to the sink like a good one, which rejects it.
fn read_stream(raw: impl Read, location: &str, limits: &Limits, sink: &mut Sink<'_>) -> Result<(), String> {
    let decoded = portcullis_scan::decompress::open(raw, limits.max_input_bytes).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(256 * 1024, decoded);
    let mut line_no = 0u64;
    let mut first: Option<Vec<u8>> = None;
    // The first non-blank line tells the shape: a whole JSON value on one
    // line means JSON Lines; `[` or an incomplete value means one document.
    while let Some(line) = next_line(&mut reader, limits.max_record_bytes, &mut line_no)? {
        let Some(line) = line else {
            let why = format!("a record over the {} byte limit", limits.max_record_bytes);
            sink(format!("{location}:{line_no}"), Err(why));
            continue;
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            sink(format!("{location}:{line_no}"), Err("not UTF-8".into()));
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
        sink(format!("{location}:{line_no}"), Ok(text));
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
                    sink(format!("{location}[{i}]"), Ok(&item.to_string()));
                }
            }
            Err(e) => sink(location.to_string(), Err(format!("not a JSON array of records: {e}"))),
        }
    } else {
        sink(location.to_string(), Ok(text));
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
