//! Reading a layer once, streaming, into [`LayerFacts`], and merging the
//! layers of an image with overlay semantics.
//!
//! A layer is data from a stranger: compression is detected from magic
//! bytes rather than trusted from a media type; decompressed bytes, entry
//! count and the size of any file read into memory are all bounded; paths
//! that climb out of the root are skipped with a warning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};

use thiserror::Error;

use crate::os_release::{self, OsRelease};
use crate::{apk, binary, decompress, dpkg, java, npm, python, rpm, Package, Parsed};

pub mod links;

#[derive(Debug, Error)]
pub enum LayerError {
    #[error("layer expands past the limit of {0} bytes (a compression bomb, or raise the limit)")]
    TooLarge(u64),
    #[error("layer has more than {0} entries")]
    TooManyEntries(u64),
    #[error("layer is not a readable tar archive: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Uncompressed bytes a layer may expand to.
    pub max_layer_bytes: u64,
    /// Largest file read into memory (package databases, release files).
    pub max_file_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_layer_bytes: 16 << 30,
            max_file_bytes: 64 << 20,
            max_entries: 2_000_000,
        }
    }
}

/// What one layer says about the software in the image, keyed by the
/// paths it was found at so later layers can replace or delete it.
/// The reader's version: cached facts from an older reader (which knew
/// fewer kinds of files) are read again rather than trusted.
pub const FACTS_VERSION: u32 = 6;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerFacts {
    /// [`FACTS_VERSION`] of the reader that produced these facts.
    #[serde(default)]
    pub version: u32,
    /// `etc/os-release` or `usr/lib/os-release`, whichever the layer holds
    /// (the former wins, as systemd reads it first).
    pub os_release: BTreeMap<String, OsRelease>,
    /// Package databases by path: `var/lib/dpkg/status`,
    /// `var/lib/dpkg/status.d/<name>`, `lib/apk/db/installed`, the rpm
    /// database (`rpmdb.sqlite`, `Packages`, `Packages.db`), and each
    /// Python distribution's metadata and npm package's `package.json`.
    pub package_dbs: BTreeMap<String, Parsed>,
    /// Licenses from machine-readable `usr/share/doc/<pkg>/copyright`
    /// files, by path (dpkg's status has no license field).
    #[serde(default)]
    pub copyrights: BTreeMap<String, String>,
    /// Paths deleted by `.wh.<name>` files.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer contents are hidden (`.wh..wh..opq`).
    pub opaque_dirs: Vec<String>,
    /// Package databases that are hard links or symbolic links, by path,
    /// with the path they point to (root-relative). Their bytes are
    /// elsewhere, maybe in a lower layer: [`links::LinkResolver`] finds them.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

const DPKG_STATUS: &str = "var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
/// Wolfi and Chainguard merged `/lib` into `/usr/lib` (a symlink to it is
/// not a file the layer holds).
const APK_INSTALLED: [&str; 2] = ["lib/apk/db/installed", "usr/lib/apk/db/installed"];
/// Release files in the order they are believed: systemd's two, then
/// Alpine's own (for images that lack `os-release`).
const OS_RELEASE: [&str; 3] = ["etc/os-release", "usr/lib/os-release", ALPINE_RELEASE];
const ALPINE_RELEASE: &str = "etc/alpine-release";

fn interesting(path: &str) -> bool {
    path == DPKG_STATUS
        || APK_INSTALLED.contains(&path)
        || OS_RELEASE.contains(&path)
        || (path.starts_with(DPKG_STATUS_D)
            && !path[DPKG_STATUS_D.len()..].contains('/')
            && !path.ends_with(".md5sums"))
        || python::is_metadata_path(path)
        || npm::is_installed_manifest(path)
        || rpm::database_format(path).is_some()
        || dpkg::copyright_package(path).is_some()
        || java::is_archive_path(path)
}

/// The largest GNU long name or PAX header read (real ones are bytes).
const MAX_EXTENSION_HEADER: u64 = 1 << 20;

/// A record of PAX extended header data (`key` is `path=` or `linkpath=`):
/// `<len> key=<value>\n` records, `len` counting the whole record.
fn pax_record(data: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(key) {
            return Some(value.to_vec());
        }
        rest = &rest[len..];
    }
    None
}

/// `./a/b`, `/a/b` and `a//b` all mean `a/b`; `None` for paths that climb
/// out of the root.
fn normalize(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// What the raw tar walk makes of one entry.
enum Named {
    /// A GNU long name or PAX header, applied to the next entry.
    Extension,
    Path(String),
    /// A path that climbs out of the root, as written.
    Outside(String),
}

/// Entry names in raw mode: the tar crate would read GNU long names and
/// PAX headers into memory whatever their size; here they are bounded
/// first and applied to the entry that follows.
#[derive(Default)]
struct Names {
    long_path: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Names {
    fn next<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> io::Result<Named> {
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            let size = entry.header().size().unwrap_or(u64::MAX);
            if size > MAX_EXTENSION_HEADER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a tar extension header of {size} bytes (the limit is {MAX_EXTENSION_HEADER})"),
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data)?;
            let name = || data.split(|b| *b == 0).next().unwrap_or_default().to_vec();
            if kind.is_gnu_longname() {
                self.long_path = Some(name());
            } else if kind.is_gnu_longlink() {
                self.long_link = Some(name());
            } else if kind.is_pax_local_extensions() {
                if let Some(p) = pax_record(&data, b"path=") {
                    self.long_path = Some(p);
                }
                if let Some(p) = pax_record(&data, b"linkpath=") {
                    self.long_link = Some(p);
                }
            }
            return Ok(Named::Extension);
        }
        let raw = match self.long_path.take() {
            Some(p) => String::from_utf8_lossy(&p).into_owned(),
            None => String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
        };
        Ok(match normalize(&raw) {
            Some(path) => Named::Path(path),
            None => Named::Outside(raw),
        })
    }

    /// Where a hard or symbolic link at `path` points, root-relative.
    fn link_target<R: Read>(&mut self, entry: &tar::Entry<'_, R>, path: &str) -> Option<String> {
        let kind = entry.header().entry_type();
        let name = match self.long_link.take() {
            Some(l) => l,
            None => entry.link_name_bytes()?.into_owned(),
        };
        let name = String::from_utf8_lossy(&name);
        if kind.is_hard_link() || name.starts_with('/') {
            // Hard links name a path in the archive, from its root.
            return Some(links::resolve("", &name));
        }
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        Some(links::resolve(dir, &name))
    }
}

/// The decompressed layer stream the walk reads (its type is the
/// decompressor's, chosen by the bytes; one virtual call per read).
type LayerStream<'a> = Box<dyn Read + 'a>;

/// Whether reading a layer's bytes, decompressing them and walking its
/// entries are each done on a thread of their own, handing chunks on
/// through [`decompress::pipe`]s. Pipelined, a layer takes about as long
/// as its slowest stage (inflating, for gzip: about three quarters of the
/// work) instead of the sum, and holds two pipes more (3 MiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    One,
    Pipeline,
}

impl Threads {
    /// With room for more than one layer read at once, a layer's stages
    /// get threads of their own; one means one thread.
    pub fn for_layer_workers(layer_workers: usize) -> Threads {
        if layer_workers > 1 {
            Threads::Pipeline
        } else {
            Threads::One
        }
    }
}

/// Walks a layer's entries with their normalized names, bounded.
fn walk<'a, R: Read + 'a>(
    blob: R,
    limits: &Limits,
    threads: Threads,
    visit: impl FnMut(Named, &mut Names, &mut tar::Entry<'_, LayerStream<'a>>) -> io::Result<()> + Send,
) -> Result<(), LayerError> {
    if threads == Threads::One {
        let bounded = decompress::open(blob, limits.max_layer_bytes).map_err(|e| LayerError::Corrupt(e.to_string()))?;
        return walk_stream(Box::new(bounded), limits, visit);
    }
    // The blob (which need not be Send) is read on the calling thread.
    let (raw_in, raw_out) = decompress::pipe();
    let (plain_in, plain_out) = decompress::pipe();
    std::thread::scope(|scope| {
        let walker = scope.spawn(move || walk_stream(Box::new(plain_out), limits, visit));
        scope.spawn(
            move || match decompress::open_buffered(raw_out, limits.max_layer_bytes) {
                Ok(stream) => plain_in.pump(stream),
                Err(e) => plain_in.fail(e),
            },
        );
        // Each stage ends when the next stops reading (done, or failed):
        // its dropped reader makes the next send fail.
        raw_in.pump(blob);
        walker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn walk_stream<'a>(
    stream: LayerStream<'a>,
    limits: &Limits,
    mut visit: impl FnMut(Named, &mut Names, &mut tar::Entry<'_, LayerStream<'a>>) -> io::Result<()>,
) -> Result<(), LayerError> {
    let mut archive = tar::Archive::new(stream);
    let fail = |e: io::Error| -> LayerError {
        if decompress::is_limit(&e) {
            LayerError::TooLarge(limits.max_layer_bytes)
        } else {
            LayerError::Corrupt(e.to_string())
        }
    };
    let mut count = 0u64;
    let mut names = Names::default();
    for entry in archive.entries().map_err(fail)?.raw(true) {
        let mut entry = entry.map_err(fail)?;
        count += 1;
        if count > limits.max_entries {
            return Err(LayerError::TooManyEntries(limits.max_entries));
        }
        let named = names.next(&mut entry).map_err(fail)?;
        if matches!(named, Named::Extension) {
            continue;
        }
        visit(named, &mut names, &mut entry).map_err(fail)?;
    }
    Ok(())
}

/// Reads a file of at most `limit` bytes from an entry; `None` (with a
/// warning) when it is larger.
fn read_bounded<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: &str,
    limit: u64,
    warnings: &mut Vec<String>,
) -> io::Result<Option<Vec<u8>>> {
    let size = entry.header().size().unwrap_or(u64::MAX);
    if size > limit {
        warnings.push(format!("skipped {path}: {size} bytes is over the {limit} byte limit"));
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.by_ref().take(limit + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Reads a layer blob (gzip, zstd or plain tar) into its facts, on the
/// calling thread.
pub fn read_layer<R: Read>(blob: R, limits: &Limits) -> Result<LayerFacts, LayerError> {
    read_layer_with(blob, limits, Threads::One)
}

/// [`read_layer`], pipelined over three threads with
/// [`Threads::Pipeline`]. The facts are the same.
pub fn read_layer_with<R: Read>(blob: R, limits: &Limits, threads: Threads) -> Result<LayerFacts, LayerError> {
    let mut facts = LayerFacts {
        version: FACTS_VERSION,
        ..LayerFacts::default()
    };
    walk(blob, limits, threads, |named, names, entry| {
        let path = match named {
            Named::Path(p) => p,
            Named::Outside(raw) => {
                facts
                    .warnings
                    .push(format!("skipped {raw:?}: the path leaves the image root"));
                return Ok(());
            }
            Named::Extension => return Ok(()),
        };
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d.to_string(), b),
            None => (String::new(), path.as_str()),
        };
        if base == ".wh..wh..opq" {
            facts.opaque_dirs.push(dir);
            return Ok(());
        }
        if let Some(deleted) = base.strip_prefix(".wh.") {
            facts.whiteouts.push(if dir.is_empty() {
                deleted.to_string()
            } else {
                format!("{dir}/{deleted}")
            });
            return Ok(());
        }
        let kind = entry.header().entry_type();
        if (kind.is_symlink() || kind.is_hard_link()) && interesting(&path) {
            // A package database that lives elsewhere: found later, in the layer set.
            if let Some(target) = names.link_target(entry, &path) {
                facts.package_dbs.remove(&path);
                facts.links.insert(path, target);
            }
            return Ok(());
        }
        let is_file = kind.is_file();
        let executable = is_file && entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        if executable && !interesting(&path) {
            return read_executable(entry, path, limits, &mut facts);
        }
        if !is_file || !interesting(&path) {
            return Ok(());
        }
        facts.links.remove(&path);
        if let Some(bytes) = read_bounded(entry, &path, limits.max_file_bytes, &mut facts.warnings)? {
            interpret(path, &bytes, limits, &mut facts);
        }
        Ok(())
    })?;
    Ok(facts)
}

/// What a file at `path` (one [`interesting`] names) says, into `facts`.
pub(crate) fn interpret(path: String, bytes: &[u8], limits: &Limits, facts: &mut LayerFacts) {
    if let Some(format) = rpm::database_format(&path) {
        facts.package_dbs.insert(path, rpm::parse_database(format, bytes));
        return;
    }
    if java::is_archive_path(&path) {
        let parsed = java::parse_archive(bytes, &path, limits.max_file_bytes);
        if !parsed.packages.is_empty() || !parsed.warnings.is_empty() {
            facts.package_dbs.insert(path, parsed);
        }
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    if dpkg::copyright_package(&path).is_some() {
        if let Some(l) = dpkg::copyright_licenses(&text) {
            facts.copyrights.insert(path, l);
        }
        return;
    }
    if path == ALPINE_RELEASE {
        match os_release::alpine_release(&text) {
            Some(o) => {
                facts.os_release.insert(path, o);
            }
            None => facts.warnings.push(format!("{path} holds no version; ignored")),
        }
    } else if OS_RELEASE.contains(&path.as_str()) {
        match os_release::parse(&text) {
            Some(o) => {
                facts.os_release.insert(path, o);
            }
            None => facts.warnings.push(format!("{path} has no ID; ignored")),
        }
    } else if APK_INSTALLED.contains(&path.as_str()) {
        facts.package_dbs.insert(path, apk::parse_installed(&text));
    } else if python::is_metadata_path(&path) {
        facts.package_dbs.insert(path, python::parse_metadata(&text));
    } else if npm::is_installed_manifest(&path) {
        facts.package_dbs.insert(path, npm::parse_package_json(&text));
    } else {
        facts.package_dbs.insert(path, dpkg::parse_status(&text));
    }
}

/// Reads the files at `wanted` paths from a layer: their bytes (bounded by
/// `max_file_bytes`) or, for links, where they point. For resolving the
/// package databases that are links (see [`links::LinkResolver`]).
pub fn read_files<R: Read>(
    blob: R,
    wanted: &std::collections::BTreeSet<String>,
    limits: &Limits,
) -> Result<BTreeMap<String, links::Found>, LayerError> {
    let mut found = BTreeMap::new();
    walk(blob, limits, Threads::One, |named, names, entry| {
        let Named::Path(path) = named else { return Ok(()) };
        if !wanted.contains(&path) {
            return Ok(());
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = names.link_target(entry, &path) {
                found.insert(path, links::Found::Link(target));
            }
        } else if kind.is_file() {
            let mut warnings = Vec::new();
            match read_bounded(entry, &path, limits.max_file_bytes, &mut warnings)? {
                Some(bytes) => found.insert(path, links::Found::Bytes(bytes)),
                None => found.insert(path, links::Found::TooLarge),
            };
        }
        Ok(())
    })?;
    Ok(found)
}

/// An executable that is an ELF file may be a Go or cargo-auditable
/// binary that lists its modules; only those are read whole (bounded).
fn read_executable<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    path: String,
    limits: &Limits,
    facts: &mut LayerFacts,
) -> io::Result<()> {
    let size = entry.header().size().unwrap_or(u64::MAX);
    if size < 64 {
        return Ok(());
    }
    let mut head = [0u8; 4];
    entry.read_exact(&mut head)?;
    if !binary::is_elf(&head) {
        return Ok(());
    }
    if size > limits.max_file_bytes {
        facts.warnings.push(format!(
            "skipped {path}: an executable of {size} bytes is over the {} byte limit",
            limits.max_file_bytes
        ));
        return Ok(());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(&head);
    entry.take(limits.max_file_bytes).read_to_end(&mut bytes)?;
    if let Some(parsed) = binary::parse(&bytes) {
        facts.package_dbs.insert(path, parsed);
    }
    Ok(())
}

/// A package in the merged image, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Component {
    pub package: Package,
    /// The layer whose database first listed this package at this version.
    pub layer: String,
    /// The database file it is recorded in.
    pub path: String,
    /// Its package URL, once the image's OS release is known.
    pub purl: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageFacts {
    pub os: Option<OsRelease>,
    pub components: Vec<Component>,
    pub warnings: Vec<String>,
}

/// What one layer hides from the layers below it, indexed: checking a path
/// costs its depth, not the number of whiteouts (a crafted pair of layers
/// with a million whiteouts and a million package databases would
/// otherwise take 10^12 comparisons).
struct Hidden<'a> {
    whiteouts: HashSet<&'a str>,
    opaque_dirs: HashSet<&'a str>,
    everything: bool,
}

impl<'a> Hidden<'a> {
    fn of(facts: &'a LayerFacts) -> Hidden<'a> {
        Hidden {
            whiteouts: facts.whiteouts.iter().map(String::as_str).collect(),
            opaque_dirs: facts.opaque_dirs.iter().map(String::as_str).collect(),
            everything: facts.opaque_dirs.iter().any(String::is_empty),
        }
    }

    /// A whiteout hides its path and everything below; an opaque directory
    /// hides what is below it.
    fn hides(&self, path: &str) -> bool {
        self.everything
            || self.whiteouts.contains(path)
            || path.match_indices('/').any(|(i, _)| {
                let dir = &path[..i];
                self.whiteouts.contains(dir) || self.opaque_dirs.contains(dir)
            })
    }
}

/// Merges layers bottom to top as an overlay filesystem would: a later
/// copy of a file replaces the earlier one, a whiteout deletes a path (and
/// everything under it), an opaque directory hides everything below it.
pub fn merge<'a>(layers: impl IntoIterator<Item = (&'a str, &'a LayerFacts)>) -> ImageFacts {
    // path -> (layer digest, facts); later layers overwrite.
    let mut dbs: BTreeMap<String, Vec<Component>> = BTreeMap::new();
    let mut releases: BTreeMap<String, OsRelease> = BTreeMap::new();
    let mut copyrights: BTreeMap<String, String> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (digest, facts) in layers {
        let hidden = Hidden::of(facts);
        dbs.retain(|p, _| !hidden.hides(p));
        releases.retain(|p, _| !hidden.hides(p));
        copyrights.retain(|p, _| !hidden.hides(p));
        copyrights.extend(facts.copyrights.iter().map(|(p, l)| (p.clone(), l.clone())));
        for (path, parsed) in &facts.package_dbs {
            let before = dbs.remove(path).unwrap_or_default();
            let mut introduced: HashMap<(&str, &str), &str> = HashMap::with_capacity(before.len());
            for c in &before {
                introduced
                    .entry((c.package.name.as_str(), c.package.version.as_str()))
                    .or_insert(c.layer.as_str());
            }
            let components = parsed
                .packages
                .iter()
                .map(|p| {
                    // Unchanged since a lower layer: that layer introduced it.
                    let layer = introduced
                        .get(&(p.name.as_str(), p.version.as_str()))
                        .map_or(digest.to_string(), |l| l.to_string());
                    Component {
                        package: p.clone(),
                        layer,
                        path: path.clone(),
                        purl: String::new(),
                    }
                })
                .collect();
            warnings.extend(parsed.warnings.iter().map(|w| format!("{digest}: {w}")));
            dbs.insert(path.clone(), components);
        }
        for (path, o) in &facts.os_release {
            releases.insert(path.clone(), o.clone());
        }
        warnings.extend(facts.warnings.iter().map(|w| format!("{digest}: {w}")));
    }
    let os = OS_RELEASE.iter().find_map(|p| releases.get(*p).cloned());
    let mut components: Vec<Component> = dbs.into_values().flatten().collect();
    for c in &mut components {
        c.purl = crate::purl::purl(&c.package, os.as_ref());
        if c.package.ecosystem == crate::Ecosystem::Deb && c.package.license.is_none() {
            // Multi-arch names (`libc6:amd64`) document under the bare name.
            let name = c.package.name.split(':').next().unwrap_or(&c.package.name);
            c.package.license = copyrights.get(&format!("usr/share/doc/{name}/copyright")).cloned();
        }
    }
    ImageFacts {
        os,
        components,
        warnings,
    }
}

#[cfg(test)]
mod tests;
