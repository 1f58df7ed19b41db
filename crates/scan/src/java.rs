//! Java archives (`.jar`, `.war`, `.ear`, Jenkins' `.hpi`/`.jpi`) and the
//! archives nested in them (`BOOT-INF/lib`, `WEB-INF/lib`): Maven's
//! `pom.properties` name a package exactly (`group:artifact`, as Maven
//! advisories do); without one, `MANIFEST.MF` and the file name give a
//! name and version that are listed but cannot be matched.
//!
//! An archive is data from a stranger: nesting depth and the bytes
//! inflated from one top-level archive are bounded.

use std::io::{Cursor, Read};

use crate::{Ecosystem, Package, Parsed};

const EXTENSIONS: [&str; 5] = [".jar", ".war", ".ear", ".hpi", ".jpi"];
/// Archives within archives within archives: deeper is not real packaging.
const MAX_DEPTH: usize = 3;
/// The largest `pom.properties` or `MANIFEST.MF` read.
const MAX_METADATA: u64 = 1 << 20;

pub fn is_archive_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// Every package in an archive and the archives inside it; `budget` is
/// how many bytes nested archives may inflate to, all told.
pub fn parse_archive(bytes: &[u8], path: &str, budget: u64) -> Parsed {
    let mut out = Parsed::default();
    let mut left = budget;
    walk(bytes, path, 0, &mut left, &mut out);
    out
}

fn maven_package(group: &str, artifact: &str, version: &str) -> Package {
    let name = if group.is_empty() {
        artifact.to_string()
    } else {
        format!("{group}:{artifact}")
    };
    Package {
        ecosystem: Ecosystem::Maven,
        source_name: name.clone(),
        source_version: version.to_string(),
        name,
        version: version.to_string(),
        architecture: None,
        license: None,
    }
}

/// `key=value` lines, `#` comments (the subset Maven writes).
fn properties(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once(['=', ':']))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// `Name: value` headers of the main section, with continuation lines.
fn manifest(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some((_, v)) = out.last_mut() {
                v.push_str(more);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `commons-lang3-3.12.0.jar` → (`commons-lang3`, `3.12.0`).
fn name_from_file(path: &str) -> Option<(String, String)> {
    let file = path.rsplit(['/', '!']).next()?;
    let stem = file.rsplit_once('.')?.0;
    let at = stem
        .char_indices()
        .find(|(i, c)| *c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))?
        .0;
    Some((stem[..at].to_string(), stem[at + 1..].to_string()))
}

/// Reads an entry of at most `limit` bytes; every byte inflated, kept or
/// not, is taken from `left`, the archive's budget (so thousands of small
/// metadata files cost as much as one big nested archive).
fn read_entry(entry: &mut impl Read, limit: u64, left: &mut u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let cap = limit.min(*left);
    let read = entry.take(cap + 1).read_to_end(&mut bytes);
    *left = left.saturating_sub(bytes.len() as u64);
    read.ok()?;
    (bytes.len() as u64 <= cap).then_some(bytes)
}

fn walk(bytes: &[u8], path: &str, depth: usize, left: &mut u64, out: &mut Parsed) {
    let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(a) => a,
        Err(e) => {
            out.warnings.push(format!("{path}: not a readable Java archive: {e}"));
            return;
        }
    };
    let mut poms = 0;
    let mut main_manifest = None;
    for i in 0..archive.len() {
        let Ok(mut entry) = archive.by_index(i) else {
            out.warnings.push(format!("{path}: entry {i} is unreadable; skipped"));
            continue;
        };
        let Some(name) = entry.enclosed_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue; // `..` or absolute: not a name this reader trusts
        };
        if !entry.is_file() {
            continue;
        }
        let parts: Vec<&str> = name.split('/').collect();
        if parts.len() == 5 && parts[0] == "META-INF" && parts[1] == "maven" && parts[4] == "pom.properties" {
            let Some(text) = read_entry(&mut entry, MAX_METADATA, left) else {
                out.warnings.push(format!(
                    "{path}!{name}: too large, unreadable or over the archive's budget"
                ));
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            let get = |k: &str| properties(&text).find(|(key, _)| *key == k).map(|(_, v)| v.to_string());
            match (get("groupId"), get("artifactId"), get("version")) {
                (Some(g), Some(a), Some(v)) if !a.is_empty() && !v.is_empty() => {
                    out.packages.push(maven_package(&g, &a, &v));
                    poms += 1;
                }
                _ => out
                    .warnings
                    .push(format!("{path}!{name}: no groupId, artifactId or version")),
            }
        } else if name == "META-INF/MANIFEST.MF" {
            main_manifest =
                read_entry(&mut entry, MAX_METADATA, left).map(|b| String::from_utf8_lossy(&b).into_owned());
        } else if is_archive_path(&name) {
            if depth + 1 > MAX_DEPTH {
                out.warnings.push(format!(
                    "{path}!{name}: nested deeper than {MAX_DEPTH} archives; skipped"
                ));
                continue;
            }
            let size = entry.size();
            if size > *left {
                out.warnings
                    .push(format!("{path}!{name}: over the budget for nested archives; skipped"));
                continue;
            }
            let Some(inner) = read_entry(&mut entry, u64::MAX, left) else {
                out.warnings.push(format!("{path}!{name}: unreadable; skipped"));
                continue;
            };
            walk(&inner, &format!("{path}!{name}"), depth + 1, left, out);
        }
    }
    if poms > 0 {
        return;
    }
    // No Maven metadata: what the manifest or the file name says.
    let headers = main_manifest.as_deref().map(manifest).unwrap_or_default();
    let get = |k: &str| {
        headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let from_file = name_from_file(path);
    let name = get("Implementation-Title")
        .or_else(|| get("Bundle-SymbolicName").map(|s| s.split(';').next().unwrap_or(&s).to_string()))
        .or_else(|| from_file.as_ref().map(|(n, _)| n.clone()));
    let version = get("Implementation-Version")
        .or_else(|| get("Bundle-Version"))
        .or_else(|| from_file.map(|(_, v)| v));
    if let (Some(n), Some(v)) = (name, version) {
        out.packages.push(maven_package("", &n, &v));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn pom(g: &str, a: &str, v: &str) -> (String, Vec<u8>) {
        (
            format!("META-INF/maven/{g}/{a}/pom.properties"),
            format!("#Generated by Maven\ngroupId={g}\nartifactId={a}\nversion={v}\n").into_bytes(),
        )
    }

    fn names(p: &Parsed) -> Vec<(&str, &str)> {
        p.packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    #[test]
    fn jars_wars_and_nesting() {
        let (jackson_path, jackson) = pom("com.fasterxml.jackson.core", "jackson-databind", "2.9.10");
        let lib = zip_of(&[(jackson_path.as_str(), &jackson[..])]);
        let plain = zip_of(&[(
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\nImplementation-Title: plainlib\nImplementation-Version: 0.9\n",
        )]);
        let (app_path, app) = pom("com.example", "app", "1.0.0");
        let war = zip_of(&[
            (app_path.as_str(), &app[..]),
            ("WEB-INF/lib/jackson-databind-2.9.10.jar", &lib[..]),
            ("WEB-INF/lib/plainlib.jar", &plain[..]),
            ("WEB-INF/lib/broken.jar", b"not a zip"),
        ]);
        let p = parse_archive(&war, "srv/app.war", 64 << 20);
        assert_eq!(
            names(&p),
            [
                ("com.example:app", "1.0.0"),
                ("com.fasterxml.jackson.core:jackson-databind", "2.9.10"),
                ("plainlib", "0.9"),
            ]
        );
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("broken.jar: not a readable Java archive")),
            "{:?}",
            p.warnings
        );
        // A jar with nothing but its file name.
        let bare = zip_of(&[("x.class", b"\xca\xfe\xba\xbe")]);
        assert_eq!(
            names(&parse_archive(&bare, "opt/lib/commons-lang3-3.12.0.jar", 1 << 20)),
            [("commons-lang3", "3.12.0")]
        );
        // Nesting and the inflation budget are bounded.
        let mut deep = lib.clone();
        for i in 0..5 {
            deep = zip_of(&[(format!("lib/level{i}.jar").as_str(), &deep[..])]);
        }
        let p = parse_archive(&deep, "deep.jar", 64 << 20);
        assert!(
            p.warnings.iter().any(|w| w.contains("nested deeper")),
            "{:?}",
            p.warnings
        );
        let own_pom = pom("com.example", "app", "1.0.0").1.len() as u64;
        let p = parse_archive(&war, "srv/app.war", own_pom + 10);
        assert!(
            p.warnings.iter().any(|w| w.contains("over the budget")),
            "{:?}",
            p.warnings
        );
        assert_eq!(names(&p)[0], ("com.example:app", "1.0.0"));
    }

    /// Metadata files inflate against the same budget as nested archives:
    /// 100 half-MiB `pom.properties` (a few KiB compressed) under an 8 MiB
    /// budget are read only until it runs out.
    #[test]
    fn metadata_counts_against_the_budget() {
        let files: Vec<(String, Vec<u8>)> = (0..100)
            .map(|i| {
                let (name, mut text) = pom("com.example", &format!("a{i}"), "1.0");
                text.extend(std::iter::repeat_n(b'#', 512 << 10));
                (name, text)
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let jar = zip_of(&refs);
        assert!(jar.len() < 1 << 20, "compressed: {}", jar.len());
        let p = parse_archive(&jar, "bomb.jar", 8 << 20);
        assert!(
            (14..=16).contains(&p.packages.len()),
            "read {} of 100",
            p.packages.len()
        );
        let over = p.warnings.iter().filter(|w| w.contains("budget")).count();
        assert_eq!(over + p.packages.len(), 100, "{:?}", &p.warnings[..2]);
    }
}
