//! Offline vulnerability database files uploaded over HTTP (the API and
//! the web UI): streamed to a private directory beside the database, then
//! imported exactly as `portcullis db import` does (a new generation
//! switched in by rename; the scanner's watcher loads it and re-matches).

use std::path::PathBuf;

use portcullis_vulndb::{Limits, NoProgress, VulnDbError};
use tokio::io::AsyncWriteExt;

use crate::access::Actor;
use crate::{Registry, RegistryError};

/// The most one uploaded file may hold: the importer's own bound on an input.
fn max_upload() -> u64 {
    Limits::default().max_input_bytes
}

/// One uploaded file on its way to an import; its directory is removed
/// when this is dropped, imported or not.
pub struct VulnDbUpload {
    dir: PathBuf,
    path: PathBuf,
    file: tokio::fs::File,
    written: u64,
}

impl Drop for VulnDbUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A source name is a plain file name: it names the format and the source
/// it replaces, and must never point outside the upload directory.
fn check_name(name: &str) -> Result<(), RegistryError> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if plain {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "source name {name:?}: a file name of letters, digits and . - _ + (such as debian.osv.jsonl.gz)"
        )))
    }
}

impl Registry {
    /// The database's status (sources, records, generation, import time)
    /// and the generation the scanner has loaded, as JSON.
    pub async fn vulndb_status(&self) -> Result<serde_json::Value, RegistryError> {
        let db = self.scanner.vulndb.clone();
        let status = tokio::task::spawn_blocking(move || db.status())
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let loaded = self.scanner.index().map(|(g, index)| (g, index.len()));
        Ok(serde_json::json!({
            "generation": status.as_ref().map(|s| s.generation),
            "imported_at": status.as_ref().map(|s| portcullis_vulndb::rfc3339(s.imported_at)),
            "records": status.as_ref().map(|s| s.records()),
            "sources": status.as_ref().map(|s| s.sources.iter().map(|src| serde_json::json!({
                "name": src.name, "format": src.format, "records": src.records, "rejected": src.rejected,
                "imported_at": portcullis_vulndb::rfc3339(src.imported_at),
            })).collect::<Vec<_>>()).unwrap_or_default(),
            "loaded_generation": loaded.map(|(g, _)| g),
            "loaded_advisories": loaded.map(|(_, n)| n),
            "updates": self.vulndb_update_status().await?,
            "pull": self.vulndb_pull_status().await?,
        }))
    }

    /// Starts an upload of the source file `name`.
    pub async fn vulndb_upload(&self, name: &str) -> Result<VulnDbUpload, RegistryError> {
        check_name(name)?;
        let root = self.scanner.vulndb.dir().with_extension("uploads");
        let dir = root.join(uuid::Uuid::new_v4().to_string());
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(name);
        let file = tokio::fs::File::create(&path).await?;
        Ok(VulnDbUpload {
            dir,
            path,
            file,
            written: 0,
        })
    }
}

impl VulnDbUpload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), RegistryError> {
        self.written += chunk.len() as u64;
        if self.written > max_upload() {
            return Err(RegistryError::Invalid(format!(
                "the file is larger than {} bytes; import it with `portcullis db import` instead",
                max_upload()
            )));
        }
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Imports the file as a source (every other source kept unless
    /// `replace_all`), audits the import, and returns the report.
    pub async fn import(
        mut self,
        reg: &Registry,
        actor: &Actor,
        replace_all: bool,
    ) -> Result<serde_json::Value, RegistryError> {
        self.file.flush().await?;
        if self.written == 0 {
            return Err(RegistryError::Invalid("the file is empty".into()));
        }
        let db = reg.scanner.vulndb.clone();
        let path = self.path.clone();
        let report =
            tokio::task::spawn_blocking(move || db.import(&[path], replace_all, &Limits::default(), &NoProgress))
                .await
                .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let mut ev = actor.event("vulndb.import");
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                ev.result = "failed".into();
                ev.detail = Some(e.to_string());
                reg.meta.audit(&[ev]).await?;
                return Err(match e {
                    VulnDbError::Busy(_) => RegistryError::Conflict(e.to_string()),
                    VulnDbError::Io { .. } => RegistryError::Internal(e.to_string()),
                    _ => RegistryError::Invalid(e.to_string()),
                });
            }
        };
        let records: u64 = report.sources.iter().map(|s| s.records).sum();
        let rejected: u64 = report.sources.iter().map(|s| s.rejected_count).sum();
        ev.detail = Some(format!(
            "generation {}: {records} records imported, {rejected} rejected, {} sources kept",
            report.generation,
            report.kept.len()
        ));
        reg.meta.audit(&[ev]).await?;
        reg.scanner.database_changed();
        serde_json::to_value(&report).map_err(|e| RegistryError::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn source_names_are_plain_file_names() {
        let table = [
            ("debian.osv.jsonl.gz", true),
            ("npm-advisories.json", true),
            ("a+b_c-1.zip", true),
            ("", false),
            (".hidden", false),
            ("../../etc/passwd", false),
            ("dir/file.json", false),
            ("sp ace.json", false),
        ];
        for (name, ok) in table {
            assert_eq!(super::check_name(name).is_ok(), ok, "{name}");
        }
    }
}
