//! The offline vulnerability database, kept in `<data>/vulndb`.
//!
//! Layout: one directory per *generation* holding a zstd-compressed JSON
//! Lines file per source, a `status.json`, and a `CURRENT` file naming the
//! generation in force. An import builds the next generation beside the
//! current one and switches `CURRENT` with a rename, so a failed or
//! interrupted import leaves the previous database in force and a reader
//! never sees half of one. Records are stored as the OSV JSON they came
//! in (compacted), so a later Portcullis that understands more of OSV can
//! read more of them without a re-import.

mod export;
mod formats;
mod index;
mod input;
mod pull;
mod sources;
mod update;

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use portcullis_scan::osv::Advisory;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use export::{
    is_export, read_export_manifest, ExportManifest, ExportedSource, ARTIFACT_TYPE, EXPORT_FORMAT, EXPORT_VERSION,
    LAYER_MEDIA_TYPE, MANIFEST_NAME, MAX_EXPORT_SOURCES,
};
pub use index::DiskIndex;
pub use input::Limits;
pub use portcullis_registry_client::Access;
pub use pull::{PullOptions, PullOutcome, PullReport, PullState, PullView};
pub use sources::{
    parse_source, parse_sources, unix_now, Location, Source, SourceState, SourceView, SourcesFrom, UpdateState,
    MAX_SOURCES,
};
pub use update::{Outcome, SourceOutcome, UpdateOptions, UpdateReport};

#[derive(Debug, Error)]
pub enum VulnDbError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: no such file or directory")]
    NoInput(PathBuf),
    #[error("two inputs are both called {0:?}; a source is named by its file name")]
    DuplicateSource(String),
    #[error("{path}: {why}; nothing was imported, the previous database stays in force")]
    Unreadable { path: String, why: String },
    #[error("another import is running on {0}")]
    Busy(PathBuf),
    #[error("the stored database is damaged ({0}); import it again")]
    Damaged(String),
    #[error("the database index: {0}")]
    Index(String),
    #[error("vulnerability database source {url:?}: {why}")]
    BadSource { url: String, why: String },
    #[error("another update is running on {0}")]
    UpdateBusy(PathBuf),
    #[error("there is no database in {0}: import one first")]
    NoDatabase(PathBuf),
    /// A pulled copy that is not to be trusted (`db pull`, `vulndb_pull`).
    #[error("{reference}: refused: {why}; the database in force is unchanged")]
    PullRefused { reference: String, why: String },
    #[error("another pull is running on {0}")]
    PullBusy(PathBuf),
    /// A pull that could not be tried or finished.
    #[error("{reference}: {why}")]
    Pull { reference: String, why: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VulnDbError + '_ {
    move |source| VulnDbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `db status` shows: which sources are in force and how big they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub generation: u64,
    /// Unix seconds of the import that made this generation.
    pub imported_at: u64,
    pub sources: Vec<SourceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The input's file name (`debian.osv.jsonl.gz`); importing a file of
    /// the same name again replaces this source.
    pub name: String,
    /// The path it was imported from.
    pub origin: String,
    pub records: u64,
    pub rejected: u64,
    pub imported_at: u64,
    /// What the input held (`osv`, `nvd`, `cve5`, `debian-tracker`, or
    /// several joined by `+`); sources imported before formats were told
    /// apart were all OSV.
    #[serde(default = "osv_format")]
    pub format: String,
    file: String,
}

fn osv_format() -> String {
    "osv".into()
}

impl Status {
    pub fn records(&self) -> u64 {
        self.sources.iter().map(|s| s.records).sum()
    }
}

/// Formats Unix seconds the way `db status` prints them.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// `file:line`, or `archive!member` for zip members.
    pub location: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub name: String,
    /// The formats recognised in the input, as [`SourceStatus::format`].
    pub format: String,
    pub records: u64,
    pub rejected_count: u64,
    /// The first [`REJECTED_KEPT`] rejections in full.
    pub rejected: Vec<Rejected>,
    /// Records whose id appeared again later in the same source; the later one is kept.
    pub duplicates: u64,
}

/// How many rejections a report lists in full; the rest are counted.
pub const REJECTED_KEPT: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub generation: u64,
    pub sources: Vec<SourceReport>,
    /// Sources from earlier imports that are still in force.
    pub kept: Vec<String>,
}

/// Told how far an import has read, to draw a progress bar on a terminal.
pub trait Progress {
    fn start(&self, source: &str, total_bytes: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// For callers that show nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// The advisories in force, with the status they were loaded under.
pub struct Loaded {
    pub status: Status,
    pub advisories: Vec<Advisory>,
}

#[derive(Debug, Clone)]
pub struct VulnDb {
    dir: PathBuf,
}

const CURRENT: &str = "CURRENT";
const STATUS: &str = "status.json";

impl VulnDb {
    /// The database under `data_dir/vulndb`; nothing is created until an import.
    pub fn in_data_dir(data_dir: &Path) -> VulnDb {
        VulnDb {
            dir: data_dir.join("vulndb"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generation in force, or `None` before the first import.
    pub fn status(&self) -> Result<Option<Status>, VulnDbError> {
        let Some(generation) = self.current()? else {
            return Ok(None);
        };
        let path = self.dir.join(generation.to_string()).join(STATUS);
        let text = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| VulnDbError::Damaged(format!("{}: {e}", path.display())))
    }

    fn current(&self) -> Result<Option<u64>, VulnDbError> {
        let path = self.dir.join(CURRENT);
        match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| VulnDbError::Damaged(format!("{} says {s:?}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Every advisory in force, read into memory (a record whose id comes
    /// again later in its source is replaced by the later one); for the
    /// in-memory baseline of benchmarks and tests. Scans use [`VulnDb::open`].
    pub fn load(&self) -> Result<Option<Loaded>, VulnDbError> {
        let Some(status) = self.status()? else {
            return Ok(None);
        };
        let gen_dir = self.dir.join(status.generation.to_string());
        let mut advisories = Vec::with_capacity(status.records() as usize);
        for source in &status.sources {
            let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            read_records(&gen_dir.join(&source.file), &mut |advisory| {
                match at.get(&advisory.id) {
                    Some(&i) => advisories[i] = advisory,
                    None => {
                        at.insert(advisory.id.clone(), advisories.len());
                        advisories.push(advisory);
                    }
                }
                Ok(())
            })?;
        }
        Ok(Some(Loaded { status, advisories }))
    }

    /// The generation in force with its on-disk index, or `None` before the
    /// first import. A generation written before the index existed (or
    /// with an older index) gets one built first, under the import lock.
    pub fn open(&self) -> Result<Option<(Status, DiskIndex)>, VulnDbError> {
        let Some(status) = self.status()? else {
            return Ok(None);
        };
        let gen_dir = self.dir.join(status.generation.to_string());
        let path = gen_dir.join(index::FILE);
        if !index::is_current(&path) {
            let _lock = self.lock()?;
            // Another process may have built it while we waited for the lock.
            if self.status()?.map(|s| s.generation) != Some(status.generation) {
                return self.open();
            }
            if !index::is_current(&path) {
                let tmp = gen_dir.join(format!("{}.tmp", index::FILE));
                let _ = fs::remove_file(&tmp);
                let mut writer = index::IndexWriter::create(&tmp, None)?;
                for source in &status.sources {
                    writer.begin_source(&source.name)?;
                    read_records(&gen_dir.join(&source.file), &mut |a| writer.add(&a).map(drop))?;
                }
                writer.finish()?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
            }
        }
        let index = DiskIndex::open(&path)?;
        Ok(Some((status, index)))
    }

    fn lock(&self) -> Result<File, VulnDbError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let lock_path = self.dir.join("import.lock");
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => Ok(lock),
            Err(fs::TryLockError::WouldBlock) => Err(VulnDbError::Busy(self.dir.clone())),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&lock_path)(e)),
        }
    }

    /// Imports OSV records from `inputs` (files of JSON, JSON Lines, gzip
    /// of either, zip archives, or directories of those), each as a source
    /// named by its file name that replaces an earlier source of that name.
    /// With `replace_all`, sources not named here are dropped.
    pub fn import(
        &self,
        inputs: &[PathBuf],
        replace_all: bool,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<ImportReport, VulnDbError> {
        // An export is a whole database: it replaces every source, alone.
        if let Some(export) = inputs.iter().find(|p| export::is_export(p)) {
            if inputs.len() > 1 {
                return Err(VulnDbError::Unreadable {
                    path: export.display().to_string(),
                    why: "a database export replaces the whole database: import it alone".into(),
                });
            }
            return self.import_export(export, limits, progress).map(|(report, _)| report);
        }
        let mut names = Vec::new();
        for path in inputs {
            if !path.exists() {
                return Err(VulnDbError::NoInput(path.clone()));
            }
            let name = source_name(path);
            if names.contains(&name) {
                return Err(VulnDbError::DuplicateSource(name));
            }
            names.push(name);
        }
        self.new_generation(inputs, &names, replace_all, limits, progress)
    }

    /// Drops the sources called `names` from the database in force, in one
    /// new generation (the rest carried over); `None` when none of them is
    /// in force. Used when a source leaves `vulndb_sources`: its records
    /// must not go on matching, unrefreshed, for ever.
    pub fn remove_sources(&self, names: &[String]) -> Result<Option<ImportReport>, VulnDbError> {
        let in_force = self
            .status()?
            .is_some_and(|s| s.sources.iter().any(|x| names.contains(&x.name)));
        if !in_force {
            return Ok(None);
        }
        self.new_generation(&[], names, false, &Limits::default(), &NoProgress)
            .map(Some)
    }

    /// One new generation: `inputs` imported as the sources `names` (an
    /// input-less name is dropped), the other sources carried over unless
    /// `replace_all`.
    fn new_generation(
        &self,
        inputs: &[PathBuf],
        names: &[String],
        replace_all: bool,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<ImportReport, VulnDbError> {
        let _lock = self.lock()?;
        let previous = self.status()?;
        let (generation, building) = self.begin_generation(previous.as_ref())?;
        let result = self.build(
            generation,
            &building,
            inputs,
            names,
            previous.as_ref(),
            replace_all,
            limits,
            progress,
        );
        let (status, report) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_dir_all(&building);
                return Err(e);
            }
        };
        self.switch_to(&building, &status)?;
        Ok(report)
    }

    /// The next generation's number and its empty `<n>.building`
    /// directory; the caller holds the import lock.
    fn begin_generation(&self, previous: Option<&Status>) -> Result<(u64, PathBuf), VulnDbError> {
        let generation = self.next_generation(previous)?;
        let building = self.dir.join(format!("{generation}.building"));
        if building.exists() {
            fs::remove_dir_all(&building).map_err(io_err(&building))?;
        }
        fs::create_dir(&building).map_err(io_err(&building))?;
        Ok((generation, building))
    }

    /// Writes `status` into the generation built in `building` and puts
    /// that generation in force; the caller holds the import lock.
    fn switch_to(&self, building: &Path, status: &Status) -> Result<(), VulnDbError> {
        let generation = status.generation;
        let status_path = building.join(STATUS);
        write_synced(
            &status_path,
            &serde_json::to_vec_pretty(status).expect("status serializes"),
        )?;
        // Its files are synced; its entries (and hard links) must be too
        // before CURRENT can name it.
        sync_dir(building);
        let final_dir = self.dir.join(generation.to_string());
        fs::rename(building, &final_dir).map_err(io_err(&final_dir))?;
        // The switch: readers see the old generation or the new one, whole.
        let tmp = self.dir.join("CURRENT.tmp");
        write_synced(&tmp, format!("{generation}\n").as_bytes())?;
        let current = self.dir.join(CURRENT);
        fs::rename(&tmp, &current).map_err(io_err(&current))?;
        sync_dir(&self.dir);
        self.remove_other_generations(generation);
        Ok(())
    }

    fn next_generation(&self, previous: Option<&Status>) -> Result<u64, VulnDbError> {
        let mut highest = previous.map_or(0, |s| s.generation);
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let number = name.strip_suffix(".building").unwrap_or(&name);
            if let Ok(n) = number.parse::<u64>() {
                highest = highest.max(n);
            }
        }
        Ok(highest + 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        generation: u64,
        building: &Path,
        inputs: &[PathBuf],
        names: &[String],
        previous: Option<&Status>,
        replace_all: bool,
        limits: &Limits,
        progress: &dyn Progress,
    ) -> Result<(Status, ImportReport), VulnDbError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut sources = Vec::new();
        let mut kept = Vec::new();
        // The previous index is copied and updated when it can be read;
        // otherwise the kept sources are indexed again from their files.
        let prev_index = previous
            .filter(|_| !replace_all)
            .map(|p| self.dir.join(p.generation.to_string()).join(index::FILE))
            .filter(|p| index::is_current(p));
        let mut writer = index::IndexWriter::create(&building.join(index::FILE), prev_index.as_deref())?;
        if prev_index.is_some() {
            // Sources the previous status no longer lists (an interrupted
            // past) or that this import replaces go.
            let listed: Vec<&str> =
                previous.map_or(Vec::new(), |p| p.sources.iter().map(|s| s.name.as_str()).collect());
            for name in writer.sources()? {
                if !listed.contains(&name.as_str()) || names.contains(&name) {
                    writer.drop_source(&name)?;
                }
            }
        }
        // Earlier sources that this import does not replace carry over by hard link.
        if let (Some(prev), false) = (previous, replace_all) {
            let prev_dir = self.dir.join(prev.generation.to_string());
            for s in prev.sources.iter().filter(|s| !names.contains(&s.name)) {
                let file = format!("source-{}.jsonl.zst", sources.len());
                let (from, to) = (prev_dir.join(&s.file), building.join(&file));
                if fs::hard_link(&from, &to).is_err() {
                    fs::copy(&from, &to).map_err(io_err(&from))?;
                }
                if prev_index.is_none() {
                    writer.begin_source(&s.name)?;
                    read_records(&to, &mut |a| writer.add(&a).map(drop))?;
                }
                kept.push(s.name.clone());
                sources.push(SourceStatus { file, ..s.clone() });
            }
        }
        let mut reports = Vec::new();
        for (path, name) in inputs.iter().zip(names) {
            let mut report = SourceReport {
                name: name.clone(),
                ..SourceReport::default()
            };
            let file = format!("source-{}.jsonl.zst", sources.len());
            let mut out = RecordFile::create(&building.join(&file))?;
            writer.begin_source(name)?;
            let mut added = 0u64;
            let mut failure = None;
            let format = input::read_source(path, limits, progress, &mut |location, raw| {
                if failure.is_some() {
                    return;
                }
                match raw.and_then(|raw| Advisory::parse(raw).map(|a| (a, raw)).map_err(|e| e.to_string())) {
                    Ok((a, raw)) => {
                        let stored = out.write(raw).and_then(|()| writer.add(&a));
                        match stored {
                            Ok(true) => report.duplicates += 1,
                            Ok(false) => added += 1,
                            Err(e) => failure = Some(e),
                        }
                    }
                    Err(reason) => {
                        report.rejected_count += 1;
                        if report.rejected.len() < REJECTED_KEPT {
                            report.rejected.push(Rejected { location, reason });
                        }
                    }
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            out.finish()?;
            report.format = format;
            report.records = added;
            sources.push(SourceStatus {
                name: name.clone(),
                origin: path.display().to_string(),
                records: report.records,
                rejected: report.rejected_count,
                imported_at: now,
                format: report.format.clone(),
                file,
            });
            reports.push(report);
        }
        writer.finish()?;
        let status = Status {
            generation,
            imported_at: now,
            sources,
        };
        Ok((
            status,
            ImportReport {
                generation,
                sources: reports,
                kept,
            },
        ))
    }

    /// Older generations and abandoned builds; best effort, as a leftover
    /// costs only disk space and the next import tries again.
    fn remove_other_generations(&self, keep: u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let number = name.strip_suffix(".building").unwrap_or(&name);
            if number.parse::<u64>().is_ok_and(|n| n != keep) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn source_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn compact_json(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw).map_or_else(|_| raw.replace('\n', " "), |v| v.to_string())
}

/// A source's records as stored: compact JSON Lines under zstd, every
/// valid record in input order (a later record of the same id wins when
/// read back).
pub(crate) struct RecordFile {
    path: PathBuf,
    encoder: zstd::stream::write::Encoder<'static, File>,
}

impl RecordFile {
    pub(crate) fn create(path: &Path) -> Result<RecordFile, VulnDbError> {
        let file = File::create(path).map_err(io_err(path))?;
        let encoder = zstd::stream::write::Encoder::new(file, 3).map_err(io_err(path))?;
        Ok(RecordFile {
            path: path.to_path_buf(),
            encoder,
        })
    }

    pub(crate) fn write(&mut self, raw: &str) -> Result<(), VulnDbError> {
        // A record that was pretty-printed (one OSV file per advisory) becomes one line.
        let line = if raw.contains('\n') {
            compact_json(raw)
        } else {
            raw.trim().to_string()
        };
        self.encoder.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        self.encoder.write_all(b"\n").map_err(io_err(&self.path))
    }

    pub(crate) fn finish(self) -> Result<(), VulnDbError> {
        let file = self.encoder.finish().map_err(io_err(&self.path))?;
        file.sync_all().map_err(io_err(&self.path))
    }
}

impl VulnDb {
    /// Starts the next version of a source from its stored records: a new
    /// record file at `out` holding every record of the source called
    /// `name` in the generation in force except those `replaced`, for the
    /// caller to add the changed records to. `None` when no such source is
    /// in force (the whole publication must be fetched).
    pub(crate) fn source_without(
        &self,
        name: &str,
        replaced: &std::collections::HashSet<String>,
        out: &Path,
    ) -> Result<Option<RecordFile>, VulnDbError> {
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let Some(status) = self.status()? else { return Ok(None) };
        let Some(source) = status.sources.iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        let path = self.dir.join(status.generation.to_string()).join(&source.file);
        let mut records = RecordFile::create(out)?;
        stored_lines(&path, &mut |n, line| {
            let id = serde_json::from_str::<Id>(&line).map_err(|e| damaged(&path, n, e))?;
            if !replaced.contains(&id.id) {
                records.write(&line)?;
            }
            Ok(())
        })?;
        Ok(Some(records))
    }
}

/// Every line of a stored source file, in order, with its number.
fn stored_lines(
    path: &Path,
    each: &mut dyn FnMut(usize, String) -> Result<(), VulnDbError>,
) -> Result<(), VulnDbError> {
    let file = File::open(path).map_err(io_err(path))?;
    let reader = BufReader::new(zstd::stream::read::Decoder::new(file).map_err(io_err(path))?);
    for (i, line) in reader.lines().enumerate() {
        each(i + 1, line.map_err(io_err(path))?)?;
    }
    Ok(())
}

fn damaged(path: &Path, line: usize, e: impl std::fmt::Display) -> VulnDbError {
    VulnDbError::Damaged(format!("{}:{line}: {e}", path.display()))
}

/// Every record of a stored source file, in order.
fn read_records(path: &Path, each: &mut dyn FnMut(Advisory) -> Result<(), VulnDbError>) -> Result<(), VulnDbError> {
    stored_lines(path, &mut |n, line| {
        each(Advisory::parse(&line).map_err(|e| damaged(path, n, e))?)
    })
}

/// A JSON state file beside `CURRENT` (`sources.json`, `pull.json`);
/// the default before it was first written.
fn read_state<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, VulnDbError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| VulnDbError::Damaged(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes a state file whole and switches it in by rename.
fn write_state<T: Serialize>(path: &Path, state: &T) -> Result<(), VulnDbError> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    write_synced(&tmp, &serde_json::to_vec_pretty(state).expect("state serializes"))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), VulnDbError> {
    let mut file = File::create(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests;
