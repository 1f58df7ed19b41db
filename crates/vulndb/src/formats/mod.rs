//! The publications an import understands, told apart by their content, and
//! their conversion to OSV records: every format ends as OSV JSON text, so
//! the rest of the database sees one shape.
//!
//! - OSV itself (records, arrays, JSON Lines; GitHub's advisories are OSV);
//! - CVE JSON 5 records (cvelistV5, CISA vulnrichment), converted one by one;
//! - NVD CVE API 2.0 pages and feed files, streamed entry by entry;
//! - Debian's security tracker JSON, streamed one issue at a time.

pub(crate) mod cve5;
pub(crate) mod debian_tracker;
pub(crate) mod nvd;

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use serde::de::{DeserializeSeed, Deserializer, Visitor};
use serde_json::Value;

use crate::input::Emit;

/// What a stream turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Format {
    Osv,
    Cve5,
    Nvd,
    DebianTracker,
}

impl Format {
    /// The name `db status` shows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Osv => "osv",
            Format::Cve5 => "cve5",
            Format::Nvd => "nvd",
            Format::DebianTracker => "debian-tracker",
        }
    }
}

/// How the first bytes of a stream say to read it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Nothing but whitespace.
    Empty,
    /// OSV records, CVE 5 records or NVD entries, one JSON value each: read
    /// record by record, each converted by what it holds.
    Records,
    /// One NVD CVE API 2.0 document, however large.
    NvdDocument,
    /// One Debian security tracker document, however large.
    DebianTracker,
}

/// Content in none of the known formats, and what it looked like.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unrecognised {
    NotJson(String),
    UnknownJson(String),
}

impl Unrecognised {
    pub(crate) fn why(&self) -> &str {
        match self {
            Unrecognised::NotJson(why) | Unrecognised::UnknownJson(why) => why,
        }
    }
}

/// Reads the start of a stream (whitespace already skipped).
pub(crate) fn recognise(head: &[u8]) -> Result<Shape, Unrecognised> {
    match head.first() {
        None => return Ok(Shape::Empty),
        Some(b'[') => return Ok(Shape::Records),
        Some(b'{') => {}
        Some(_) => {
            return Err(Unrecognised::NotJson(format!(
                "the content is not JSON (it starts with {})",
                show_start(head)
            )))
        }
    }
    let outline = Outline::of(head);
    let has = |k: &str| outline.keys.iter().any(|key| key == k);
    if has("vulnerabilities") || (has("format") && contains(head, b"\"NVD_CVE\"")) {
        return Ok(Shape::NvdDocument);
    }
    if outline
        .first_inner_key
        .as_deref()
        .is_some_and(|k| k.starts_with("CVE-") || k.starts_with("TEMP-"))
    {
        return Ok(Shape::DebianTracker);
    }
    if has("id") || has("dataType") || has("cveMetadata") || has("cve") {
        return Ok(Shape::Records);
    }
    if !outline.complete {
        // The keys that would tell are beyond the part read; let each
        // record's own parse decide.
        return Ok(Shape::Records);
    }
    let mut keys: Vec<&str> = outline.keys.iter().map(String::as_str).take(8).collect();
    if outline.keys.len() > keys.len() {
        keys.push("…");
    }
    Err(Unrecognised::UnknownJson(format!(
        "a JSON object with the keys {{{}}} is none of: an OSV record, a CVE JSON 5 record, \
         an NVD CVE API 2.0 document, the Debian security tracker's JSON",
        keys.join(", ")
    )))
}

fn show_start(head: &[u8]) -> String {
    let start = &head[..head.len().min(16)];
    match std::str::from_utf8(start) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!(
            "the bytes {}",
            start.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The top-level keys of a JSON object, read from its first bytes only
/// (possibly cut anywhere), and the first key of the first key's value.
#[derive(Debug, Default)]
struct Outline {
    keys: Vec<String>,
    first_inner_key: Option<String>,
    /// The object ended within the bytes read.
    complete: bool,
}

impl Outline {
    const MAX_KEYS: usize = 64;

    fn of(head: &[u8]) -> Outline {
        let mut outline = Outline::default();
        // Open containers: `true` for an object.
        let mut open: Vec<bool> = Vec::new();
        let mut first_value_is_inner = false;
        let mut i = 0;
        while i < head.len() {
            match head[i] {
                b'"' => {
                    let Some(end) = string_end(head, i + 1) else { break };
                    let is_key = open.last() == Some(&true) && next_non_space(head, end + 1) == Some(b':');
                    if is_key {
                        let key = String::from_utf8_lossy(&head[i + 1..end]).into_owned();
                        if open.len() == 1 && outline.keys.len() < Self::MAX_KEYS {
                            outline.keys.push(key);
                        } else if open.len() == 2 && first_value_is_inner && outline.first_inner_key.is_none() {
                            outline.first_inner_key = Some(key);
                        }
                    }
                    i = end;
                }
                c @ (b'{' | b'[') => {
                    if open.len() == 1 && outline.keys.len() == 1 && c == b'{' {
                        first_value_is_inner = true;
                    }
                    open.push(c == b'{');
                }
                b'}' | b']' => {
                    open.pop();
                    if open.len() == 1 {
                        first_value_is_inner = false;
                    }
                    if open.is_empty() {
                        outline.complete = true;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        outline
    }
}

/// The index of the quote closing a string that starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    while from < bytes.len() {
        match bytes[from] {
            b'\\' => from += 2,
            b'"' => return Some(from),
            _ => from += 1,
        }
    }
    None
}

fn next_non_space(bytes: &[u8], from: usize) -> Option<u8> {
    bytes.get(from..)?.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// One record of a `Records` stream as OSV: OSV text passes through; a CVE 5
/// record or an NVD entry (`{"cve": …}` or the bare `cve` object, as
/// per-CVE mirrors store it) is converted.
pub(crate) fn to_osv(text: &str) -> Result<(Format, Option<String>), String> {
    // Only what may be another format is parsed here; OSV is parsed once, later.
    if !text.contains("CVE_RECORD") && !text.contains("cveMetadata") && !text.contains("sourceIdentifier") {
        return Ok((Format::Osv, None));
    }
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(text) else {
        return Ok((Format::Osv, None));
    };
    if record.get("dataType").and_then(Value::as_str) == Some("CVE_RECORD") || record.contains_key("cveMetadata") {
        return cve5::to_osv(&record).map(|osv| (Format::Cve5, Some(osv)));
    }
    if let Some(Value::Object(cve)) = record.get("cve") {
        return nvd::to_osv(cve).map(|osv| (Format::Nvd, Some(osv)));
    }
    if record.contains_key("sourceIdentifier") && record.contains_key("vulnStatus") {
        return nvd::to_osv(&record).map(|osv| (Format::Nvd, Some(osv)));
    }
    Ok((Format::Osv, None))
}

/// OSV wants RFC 3339 times; NVD writes UTC without a zone
/// (`2023-10-12T19:15:11.747`), and so do some CVE 5 records.
pub(crate) fn utc(time: &str) -> String {
    let zoned = time.ends_with('Z')
        || time.ends_with('z')
        || time
            .get(19..)
            .is_some_and(|rest| rest.contains('+') || rest.contains('-'));
    if zoned || !time.contains('T') {
        time.to_string()
    } else {
        format!("{time}Z")
    }
}

/// A large document read one entry at a time: where it is, what one entry
/// may take, where its records go, and what the format keeps between
/// entries. Each format visits its own (a JSON object at the top).
pub(crate) struct Streamed<'p, 'e, 's, 'a, State> {
    pub(crate) location: &'p str,
    pub(crate) allowance: &'p Allowance,
    pub(crate) emit: &'e mut Emit<'s, 'a>,
    pub(crate) state: State,
}

impl<'de, State> DeserializeSeed<'de> for &mut Streamed<'_, '_, '_, '_, State>
where
    Self: Visitor<'de, Value = ()>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// Reads one whole document in `format` from `reader`, handing what it
/// holds to `emit`, and returns what the format kept between entries.
pub(crate) fn stream_document<'p, 'e, 's, 'a, State>(
    reader: impl Read,
    format: Format,
    state: State,
    (location, allowance): (&'p str, &'p Allowance),
    emit: &'e mut Emit<'s, 'a>,
) -> Result<State, String>
where
    for<'x, 'de> &'x mut Streamed<'p, 'e, 's, 'a, State>: Visitor<'de, Value = ()>,
{
    emit.saw(format);
    let mut streamed = Streamed {
        location,
        allowance,
        emit,
        state,
    };
    allowance.reset();
    let mut de = serde_json::Deserializer::from_reader(allowance.limit(reader));
    (&mut streamed).deserialize(&mut de).map_err(|e| allowance.explain(e))?;
    de.end().map_err(|e| allowance.explain(e))?;
    Ok(streamed.state)
}

/// How many bytes one entry of a streamed document may take; reset before
/// each entry, so a single huge entry is an error while the whole
/// document may be as large as the input limit allows.
#[derive(Clone)]
pub(crate) struct Allowance {
    used: Rc<Cell<u64>>,
    max: u64,
}

impl Allowance {
    pub(crate) fn new(max: u64) -> Allowance {
        Allowance {
            used: Rc::new(Cell::new(0)),
            max,
        }
    }

    pub(crate) fn reset(&self) {
        self.used.set(0);
    }

    pub(crate) fn limit<R: Read>(&self, inner: R) -> Limited<R> {
        Limited {
            inner,
            allowance: self.clone(),
        }
    }

    /// A streaming parse error as the user should read it.
    pub(crate) fn explain(&self, e: serde_json::Error) -> String {
        if e.is_io() {
            e.to_string()
        } else {
            format!("not valid JSON: {e}")
        }
    }
}

pub(crate) struct Limited<R> {
    inner: R,
    allowance: Allowance,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let used = self.allowance.used.get();
        let left = self.allowance.max.saturating_sub(used);
        if left == 0 {
            return Err(io::Error::other(format!(
                "an entry over the {} byte record limit",
                self.allowance.max
            )));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..n])?;
        self.allowance.used.set(used + n as u64);
        Ok(n)
    }
}

/// The severity list of a converted record, with where each vector came from.
#[derive(Default)]
pub(crate) struct Severities {
    entries: Vec<(&'static str, String, &'static str)>,
}

impl Severities {
    pub(crate) fn push(&mut self, kind: &'static str, vector: &str, origin: &'static str) {
        if !self
            .entries
            .iter()
            .any(|(k, v, o)| *k == kind && v == vector && *o == origin)
        {
            self.entries.push((kind, vector.to_string(), origin));
        }
    }

    /// Puts `severity` and `database_specific.severity_origins` (the same
    /// length, the same order) into `record`.
    pub(crate) fn write_into(self, record: &mut serde_json::Map<String, Value>) {
        if self.entries.is_empty() {
            return;
        }
        let (severity, origins): (Vec<Value>, Vec<Value>) = self
            .entries
            .into_iter()
            .map(|(kind, score, origin)| (serde_json::json!({"type": kind, "score": score}), Value::from(origin)))
            .unzip();
        record.insert("severity".into(), Value::Array(severity));
        record.insert(
            "database_specific".into(),
            serde_json::json!({ "severity_origins": origins }),
        );
    }
}

#[cfg(test)]
mod tests;
