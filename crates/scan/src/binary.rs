//! Compiled programs that say what they were built from: Go binaries (the
//! build information the Go linker embeds) and Rust binaries built with
//! cargo-auditable (a `.dep-v0` ELF section of zlib-compressed JSON).

use std::io::Read;

use object::{Object, ObjectSection};
use serde::Deserialize;

use crate::{Ecosystem, Package, Parsed};

const GO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// The largest cargo-auditable document inflated (they are a few KiB).
const MAX_AUDIT_JSON: u64 = 8 << 20;

/// Whether the bytes start like an ELF file.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// The packages a binary records, or `None` when it records none.
pub fn parse(binary: &[u8]) -> Option<Parsed> {
    if let Some(p) = go_buildinfo(binary) {
        return Some(p);
    }
    cargo_auditable(binary)
}

fn uvarint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

/// A length-prefixed byte string (the sentinels around the module text
/// are not UTF-8, so text is made only after they are cut off).
fn go_bytes(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = uvarint(data)?;
    let len = usize::try_from(len).ok().filter(|l| *l <= rest.len())?;
    Some((&rest[..len], &rest[len..]))
}

fn go_package(name: &str, version: &str) -> Package {
    Package {
        ecosystem: Ecosystem::Go,
        name: name.to_string(),
        version: version.to_string(),
        architecture: None,
        source_name: name.to_string(),
        // The Go vulnerability database writes versions without the `v`.
        source_version: version.trim_start_matches('v').to_string(),
        license: None,
    }
}

/// Go 1.18 and later write the toolchain version and the module list
/// inline after a 32-byte header; earlier ones point into the data
/// segment, which this reader does not follow (a warning says so).
fn go_buildinfo(binary: &[u8]) -> Option<Parsed> {
    let at = memchr::memmem::find(binary, GO_MAGIC)?;
    let header = binary.get(at..at + 32)?;
    let mut out = Parsed::default();
    if header[15] & 0x2 == 0 {
        out.warnings
            .push("a Go binary built before Go 1.18: its module list is not read".into());
        return Some(out);
    }
    let (go_version, rest) = go_bytes(&binary[at + 32..])?;
    let go_version = String::from_utf8_lossy(go_version);
    let (modinfo, _) = go_bytes(rest)?;
    // The module text sits between two 16-byte sentinels.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        String::from_utf8_lossy(&modinfo[16..modinfo.len() - 16])
    } else {
        "".into()
    };
    if let Some(v) = go_version.strip_prefix("go") {
        // `go1.21.3 X:boringcrypto` and the like: the version is the first word.
        let v = v.split_whitespace().next().unwrap_or(v);
        out.packages.push(go_package("stdlib", v));
    }
    for line in modinfo.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", path, version, ..] | ["dep", path, version, ..] => {
                out.packages.push(go_package(path, version));
            }
            // A replacement applies to the module listed just before it.
            ["=>", path, version, ..] => {
                if let Some(last) = out.packages.last_mut() {
                    *last = go_package(path, version);
                }
            }
            _ => {}
        }
    }
    // The main module of a local build is `(devel)`: nothing to match.
    out.packages.retain(|p| p.version != "(devel)");
    Some(out)
}

#[derive(Deserialize)]
struct AuditData {
    packages: Vec<AuditPackage>,
}

#[derive(Deserialize)]
struct AuditPackage {
    name: String,
    version: String,
    source: String,
    #[serde(default)]
    kind: Option<String>,
}

fn cargo_auditable(binary: &[u8]) -> Option<Parsed> {
    let file = object::File::parse(binary).ok()?;
    let section = file.section_by_name(".dep-v0")?;
    let compressed = section.data().ok()?;
    let mut out = Parsed::default();
    let mut json = Vec::new();
    let inflated = flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_AUDIT_JSON + 1)
        .read_to_end(&mut json);
    if inflated.is_err() || json.len() as u64 > MAX_AUDIT_JSON {
        out.warnings
            .push("a cargo-auditable section that does not inflate within 8 MiB; skipped".into());
        return Some(out);
    }
    let data: AuditData = match serde_json::from_slice(&json) {
        Ok(d) => d,
        Err(e) => {
            out.warnings
                .push(format!("a cargo-auditable section that is not its JSON: {e}"));
            return Some(out);
        }
    };
    for p in data.packages {
        // Only crates from crates.io are what crates.io advisories name;
        // build-time dependencies are not in the binary.
        if p.source != "crates.io" || p.kind.as_deref() == Some("build") {
            continue;
        }
        out.packages.push(Package {
            ecosystem: Ecosystem::Cargo,
            source_name: p.name.clone(),
            source_version: p.version.clone(),
            name: p.name,
            version: p.version,
            architecture: None,
            license: None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// Build information laid out as the Go 1.18+ linker writes it, inside
    /// some surrounding bytes.
    fn go_binary(version: &str, modinfo: &str) -> Vec<u8> {
        let mut blob = b"\x7fELF padding before the data segment".to_vec();
        blob.extend_from_slice(GO_MAGIC);
        blob.push(8); // pointer size
        blob.push(0x2); // inline strings, little endian
        blob.extend_from_slice(&[0; 16]);
        varint(version.len(), &mut blob);
        blob.extend_from_slice(version.as_bytes());
        // The module text between two 16-byte sentinels, which are not UTF-8.
        let mut m = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6".to_vec();
        m.extend_from_slice(modinfo.as_bytes());
        m.extend_from_slice(b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2");
        varint(m.len(), &mut blob);
        blob.extend_from_slice(&m);
        blob.extend_from_slice(b"trailing bytes");
        blob
    }

    #[test]
    fn go_build_information() {
        let modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n\
dep\tgithub.com/gin-gonic/gin\tv1.5.0\th1:abc=\n\
dep\tgolang.org/x/net\tv0.0.0-20200226121028-0de0cce0169b\th1:def=\n\
dep\tgithub.com/old/thing\tv1.0.0\th1:x=\n=>\tgithub.com/new/thing\tv1.2.0\th1:y=\n\
build\t-compiler=gc\n";
        let p = parse(&go_binary("go1.21.3 X:boringcrypto", modinfo)).unwrap();
        let got: Vec<(&str, &str, &str)> = p
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.source_version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdlib", "1.21.3", "1.21.3"),
                ("github.com/gin-gonic/gin", "v1.5.0", "1.5.0"),
                (
                    "golang.org/x/net",
                    "v0.0.0-20200226121028-0de0cce0169b",
                    "0.0.0-20200226121028-0de0cce0169b"
                ),
                ("github.com/new/thing", "v1.2.0", "1.2.0"),
            ]
        );
        assert!(p.packages.iter().all(|p| p.ecosystem == Ecosystem::Go));

        let mut old = go_binary("go1.16", "");
        let at = memchr::memmem::find(&old, GO_MAGIC).unwrap();
        old[at + 15] = 0; // pointer format
        let p = parse(&old).unwrap();
        assert!(p.packages.is_empty() && p.warnings[0].contains("before Go 1.18"));
        // Truncated right after the header: no panic, nothing claimed.
        let mut cut = go_binary("go1.22.0", "");
        let at = memchr::memmem::find(&cut, GO_MAGIC).unwrap();
        cut.truncate(at + 34);
        assert!(parse(&cut).is_none_or(|p| p.packages.is_empty()));
        assert!(parse(b"\x7fELF not a go binary").is_none());
    }

    /// An ELF file with a `.dep-v0` section, as cargo-auditable writes it.
    fn auditable_elf(json: &str) -> Vec<u8> {
        use object::write::Object as Writer;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(json.as_bytes()).unwrap();
        let compressed = z.finish().unwrap();
        let mut obj = Writer::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let id = obj.add_section(Vec::new(), b".dep-v0".to_vec(), object::SectionKind::ReadOnlyData);
        obj.append_section_data(id, &compressed, 1);
        obj.write().unwrap()
    }

    #[test]
    fn cargo_auditable_dependency_lists() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"hyper","version":"0.10.1","source":"crates.io"},
            {"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"},
            {"name":"forked","version":"1.0.0","source":"git"}]}"#;
        let p = parse(&auditable_elf(json)).unwrap();
        let got: Vec<(&str, &str)> = p
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(got, [("hyper", "0.10.1")]);
        assert_eq!(p.packages[0].ecosystem, Ecosystem::Cargo);
        let p = parse(&auditable_elf("not json")).unwrap();
        assert!(p.packages.is_empty() && p.warnings[0].contains("not its JSON"));
    }
}
