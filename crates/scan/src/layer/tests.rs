use std::io::Write;

use super::*;

const DEBIAN: &str = "ID=debian\nVERSION_ID=\"11\"\nVERSION_CODENAME=bullseye\n";
const STATUS_1: &str = "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.31-13\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.1-2\n";
const STATUS_2: &str = "Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.31-13+deb11u5\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.1-2\n\nPackage: curl\nStatus: install ok installed\nVersion: 7.74.0-1.3\n";

/// A tar with the given (path, contents) files; `None` contents is a directory.
fn tar(files: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        match content {
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                // set_path refuses `..`; hostile archives write raw names.
                let name = h.as_old_mut();
                name.name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, *c).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

fn base_layer() -> Vec<u8> {
    tar(&[
        ("etc/", None),
        ("etc/os-release", Some(DEBIAN.as_bytes())),
        ("var/lib/dpkg/status", Some(STATUS_1.as_bytes())),
        ("usr/bin/bash", Some(b"\x7fELF not really")),
    ])
}

#[test]
fn reads_plain_gzip_and_zstd_alike() {
    let plain = base_layer();
    for (what, blob) in [("plain", plain.clone()), ("gzip", gzip(&plain)), ("zstd", zstd(&plain))] {
        let facts = read_layer(&blob[..], &Limits::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(facts.os_release["etc/os-release"].id, "debian", "{what}");
        let names: Vec<&str> = facts.package_dbs["var/lib/dpkg/status"]
            .packages
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["libc6", "bash"], "{what}");
        assert!(facts.warnings.is_empty(), "{what}: {:?}", facts.warnings);
    }
}

#[test]
fn hostile_layers_get_clear_errors_or_warnings() {
    let limits = Limits {
        max_layer_bytes: 8 << 20,
        max_file_bytes: 1024,
        max_entries: 100,
    };
    // A gzip bomb: 64 MiB of zeros in ~64 KiB.
    let bomb = gzip(&tar(&[("zeros", Some(&vec![0u8; 64 << 20]))]));
    assert!(bomb.len() < 1 << 20);
    assert!(matches!(read_layer(&bomb[..], &limits), Err(LayerError::TooLarge(_))));
    let zbomb = zstd(&tar(&[("zeros", Some(&vec![0u8; 64 << 20]))]));
    assert!(matches!(read_layer(&zbomb[..], &limits), Err(LayerError::TooLarge(_))));

    let traversal = tar(&[
        ("../../etc/os-release", Some(DEBIAN.as_bytes())),
        ("var/lib/dpkg/status", Some(STATUS_1.as_bytes())),
    ]);
    let facts = read_layer(&traversal[..], &limits).unwrap();
    assert!(facts.os_release.is_empty(), "nothing outside the root is read");
    assert_eq!(facts.warnings.len(), 1);
    assert!(facts.warnings[0].contains("leaves the image root"));

    let absolute = tar(&[
        ("/etc/os-release", Some(DEBIAN.as_bytes())),
        ("./lib/apk/db/installed", Some(b"P:musl\nV:1.2\n")),
    ]);
    let facts = read_layer(&absolute[..], &limits).unwrap();
    assert!(facts.os_release.contains_key("etc/os-release"));
    assert!(facts.package_dbs.contains_key("lib/apk/db/installed"));

    let big_status = format!("Package: a\nVersion: 1\nDescription: {}\n", "x".repeat(2000));
    let oversized = tar(&[("var/lib/dpkg/status", Some(big_status.as_bytes()))]);
    let facts = read_layer(&oversized[..], &limits).unwrap();
    assert!(facts.package_dbs.is_empty());
    assert!(
        facts.warnings[0].contains("over the 1024 byte limit"),
        "{:?}",
        facts.warnings
    );

    let many: Vec<(String, Option<&[u8]>)> = (0..150).map(|i| (format!("f{i}"), Some(&b"x"[..]))).collect();
    let many: Vec<(&str, Option<&[u8]>)> = many.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    assert!(matches!(
        read_layer(&tar(&many)[..], &limits),
        Err(LayerError::TooManyEntries(100))
    ));

    let whole = gzip(&base_layer());
    let truncated = &whole[..whole.len() / 2];
    assert!(matches!(read_layer(truncated, &limits), Err(LayerError::Corrupt(_))));
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    assert!(matches!(read_layer(&garbage[..], &limits), Err(LayerError::Corrupt(_))));
    assert_eq!(
        read_layer(&[][..], &limits).unwrap(),
        LayerFacts {
            version: FACTS_VERSION,
            ..LayerFacts::default()
        },
        "an empty layer is empty"
    );
}

/// Each component as (name, version, the layer that introduced it).
fn introduced(image: &ImageFacts) -> Vec<(&str, &str, &str)> {
    image
        .components
        .iter()
        .map(|c| (c.package.name.as_str(), c.package.version.as_str(), c.layer.as_str()))
        .collect()
}

#[test]
fn merge_follows_overlay_semantics() {
    let l1 = read_layer(&base_layer()[..], &Limits::default()).unwrap();
    let l2 = read_layer(
        &tar(&[("var/lib/dpkg/status", Some(STATUS_2.as_bytes()))])[..],
        &Limits::default(),
    )
    .unwrap();
    let image = merge([("sha256:l1", &l1), ("sha256:l2", &l2)]);
    assert_eq!(image.os.as_ref().unwrap().version_id.as_deref(), Some("11"));
    assert_eq!(
        introduced(&image),
        [
            ("libc6", "2.31-13+deb11u5", "sha256:l2"), // upgraded in l2
            ("bash", "5.1-2", "sha256:l1"),            // unchanged since l1
            ("curl", "7.74.0-1.3", "sha256:l2"),       // installed in l2
        ]
    );
    assert!(image.components.iter().all(|c| c.path == "var/lib/dpkg/status"));

    // A whiteout deletes the database; an opaque directory hides status.d below it.
    let wh = read_layer(&tar(&[("var/lib/dpkg/.wh.status", Some(b""))])[..], &Limits::default()).unwrap();
    assert_eq!(wh.whiteouts, ["var/lib/dpkg/status"]);
    assert!(merge([("a", &l1), ("b", &wh)]).components.is_empty());

    let distroless = tar(&[
        (
            "var/lib/dpkg/status.d/tzdata",
            Some(b"Package: tzdata\nVersion: 2021a-1\n"),
        ),
        (
            "var/lib/dpkg/status.d/tzdata.md5sums",
            Some(b"abc  usr/share/zoneinfo/UTC\n"),
        ),
        (
            "var/lib/dpkg/status.d/netbase",
            Some(b"Package: netbase\nVersion: 6.3\n"),
        ),
    ]);
    let d1 = read_layer(&distroless[..], &Limits::default()).unwrap();
    assert_eq!(d1.package_dbs.len(), 2, "md5sums are not package records");
    let opaque = tar(&[
        ("var/lib/dpkg/status.d/.wh..wh..opq", Some(b"")),
        (
            "var/lib/dpkg/status.d/base-files",
            Some(b"Package: base-files\nVersion: 11.1\n"),
        ),
    ]);
    let d2 = read_layer(&opaque[..], &Limits::default()).unwrap();
    assert_eq!(d2.opaque_dirs, ["var/lib/dpkg/status.d"]);
    let merged = merge([("d1", &d1), ("d2", &d2)]);
    let names: Vec<&str> = merged.components.iter().map(|c| c.package.name.as_str()).collect();
    assert_eq!(names, ["base-files"], "the opaque directory hid tzdata and netbase");
    let merged = merge([("d1", &d1)]);
    assert_eq!(merged.components.len(), 2);
    assert!(merged.os.is_none());

    // usr/lib/os-release is read when etc/os-release is absent.
    let usr = read_layer(
        &tar(&[("usr/lib/os-release", Some(b"ID=alpine\nVERSION_ID=3.11.6\n"))])[..],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(merge([("u", &usr)]).os.unwrap().id, "alpine");
}

/// A dpkg package's license comes from its machine-readable copyright
/// Which paths a layer's whiteouts and opaque directories hide.
#[test]
fn whiteouts_and_opaque_dirs_hide_by_path() {
    let facts = LayerFacts {
        whiteouts: vec!["usr/lib/python3/dist-packages/six".into(), "etc/os-release".into()],
        opaque_dirs: vec!["var/lib/dpkg/status.d".into()],
        ..LayerFacts::default()
    };
    let hidden = Hidden::of(&facts);
    let table = [
        ("etc/os-release", true),
        ("etc/os-release.d/x", false),
        ("etc/os-release/x", true),
        ("usr/lib/python3/dist-packages/six/METADATA", true),
        ("usr/lib/python3/dist-packages/sixty/METADATA", false),
        ("var/lib/dpkg/status.d", false),
        ("var/lib/dpkg/status.d/tzdata", true),
        ("var/lib/dpkg/status", false),
    ];
    for (path, want) in table {
        assert_eq!(hidden.hides(path), want, "{path}");
    }
    let root = LayerFacts {
        opaque_dirs: vec![String::new()],
        ..LayerFacts::default()
    };
    assert!(Hidden::of(&root).hides("var/lib/dpkg/status"));
}

/// Two crafted layers: 100,000 package databases below 100,000 whiteouts
/// that miss them. Comparing every pair was 10^10 steps; indexed, it is a
/// few hash look-ups per path.
#[test]
fn merge_with_many_whiteouts_stays_linear() {
    let n = 100_000;
    let mut lower = LayerFacts::default();
    for i in 0..n {
        let parsed = Parsed {
            packages: vec![Package {
                ecosystem: crate::Ecosystem::Npm,
                name: format!("p{i}"),
                version: "1.0.0".into(),
                source_name: format!("p{i}"),
                source_version: "1.0.0".into(),
                architecture: None,
                license: None,
            }],
            warnings: Vec::new(),
        };
        lower
            .package_dbs
            .insert(format!("app/node_modules/p{i}/package.json"), parsed);
    }
    let upper = LayerFacts {
        whiteouts: (0..n).map(|i| format!("app/node_modules/q{i}")).collect(),
        opaque_dirs: (0..n).map(|i| format!("srv/o{i}")).collect(),
        ..LayerFacts::default()
    };
    let image = merge([("sha256:lower", &lower), ("sha256:upper", &upper)]);
    assert_eq!(image.components.len(), n);
    let deleting = LayerFacts {
        whiteouts: vec!["app/node_modules".into()],
        ..LayerFacts::default()
    };
    let image = merge([
        ("sha256:lower", &lower),
        ("sha256:upper", &upper),
        ("sha256:rm", &deleting),
    ]);
    assert!(image.components.is_empty());
}

/// file, wherever in the layers that file is (and not after a whiteout).
#[test]
fn dpkg_licenses_from_copyright_files() {
    let copyright =
        b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n";
    let status = b"Package: hello\nStatus: install ok installed\nVersion: 2.10-3\nArchitecture: amd64\n";
    let l1 = read_layer(
        &tar(&[
            ("var/lib/dpkg/status", Some(status)),
            ("usr/share/doc/hello/copyright", Some(copyright)),
        ])[..],
        &Limits::default(),
    )
    .unwrap();
    let image = merge([("sha256:one", &l1)]);
    assert_eq!(image.components[0].package.license.as_deref(), Some("GPL-2.0-or-later"));
    let l2 = read_layer(&tar(&[("usr/share/doc/.wh.hello", Some(b""))])[..], &Limits::default()).unwrap();
    let image = merge([("sha256:one", &l1), ("sha256:two", &l2)]);
    assert_eq!(image.components[0].package.license, None, "the docs were deleted");
}

/// Python and npm packages come from their own metadata files, each its
/// own "database", so an uninstall (a whiteout of the directory) removes it.
#[test]
fn language_packages_are_found_and_whited_out() {
    let site = "usr/lib/python3/dist-packages";
    let metadata = format!("{site}/requests-2.31.0.dist-info/METADATA");
    let l1 = tar(&[
        (
            metadata.as_str(),
            Some(b"Name: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\nlong text"),
        ),
        (
            "app/node_modules/@scope/pkg/package.json",
            Some(br#"{"name":"@scope/pkg","version":"1.2.3","license":"MIT"}"#),
        ),
        ("app/package.json", Some(br#"{"name":"the-app","version":"0.0.1"}"#)),
        ("app/node_modules/broken/package.json", Some(b"{")),
    ]);
    let l1 = read_layer(&l1[..], &Limits::default()).unwrap();
    let image = merge([("sha256:one", &l1)]);
    let mut got: Vec<(String, &str, &str)> = image
        .components
        .iter()
        .map(|c| {
            (
                format!("{:?}", c.package.ecosystem),
                c.package.name.as_str(),
                c.path.as_str(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "Npm".to_string(),
                "@scope/pkg",
                "app/node_modules/@scope/pkg/package.json"
            ),
            ("Python".to_string(), "requests", metadata.as_str()),
        ]
    );
    assert!(
        image
            .warnings
            .iter()
            .any(|w| w.contains("package.json is not readable")),
        "{:?}",
        image.warnings
    );
    let wh = format!("{site}/.wh.requests-2.31.0.dist-info");
    let l2 = read_layer(&tar(&[(wh.as_str(), Some(b""))])[..], &Limits::default()).unwrap();
    let image = merge([("sha256:one", &l1), ("sha256:two", &l2)]);
    let names: Vec<&str> = image.components.iter().map(|c| c.package.name.as_str()).collect();
    assert_eq!(names, ["@scope/pkg"]);
}

/// Long names (GNU and PAX) still name the files they belong to; an
/// enormous extension header is refused before it is read into memory;
/// links are never followed.
#[test]
fn long_names_huge_headers_and_links() {
    let long_dir = format!("usr/lib/python3/dist-packages/{}", "x".repeat(120));
    let metadata = format!("{long_dir}/a_very_long_distribution_name-1.0.dist-info/METADATA");
    for format in ["gnu", "pax"] {
        let mut b = tar::Builder::new(Vec::new());
        let body = b"Name: a-very-long-distribution-name\nVersion: 1.0\n";
        let mut h = if format == "gnu" {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        if format == "pax" {
            b.append_pax_extensions([("path", metadata.as_bytes())]).unwrap();
            h.set_path("placeholder").unwrap();
            h.set_cksum();
            b.append(&h, &body[..]).unwrap();
        } else {
            b.append_data(&mut h, &metadata, &body[..]).unwrap();
        }
        let layer = b.into_inner().unwrap();
        let facts = read_layer(&layer[..], &Limits::default()).unwrap();
        assert!(
            facts.package_dbs.contains_key(&metadata),
            "{format}: {:?}",
            facts.package_dbs.keys()
        );
    }

    // A PAX header claiming 2 GiB: an error, not an allocation.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(2 << 30);
    h.set_path("PaxHeader").unwrap();
    h.set_cksum();
    let mut huge = h.as_bytes().to_vec();
    huge.extend_from_slice(&[b'9'; 4096]);
    let err = read_layer(&huge[..], &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("extension header"), "{err}");

    // A symlink loop and a hard link to nowhere where the dpkg database would be.
    let mut b = tar::Builder::new(Vec::new());
    for (name, target, kind) in [
        ("a", "b", tar::EntryType::Symlink),
        ("b", "a", tar::EntryType::Symlink),
        ("var/lib/dpkg/status", "nowhere/at/all", tar::EntryType::Link),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }
    let layer = b.into_inner().unwrap();
    let facts = read_layer(&layer[..], &Limits::default()).unwrap();
    assert!(facts.package_dbs.is_empty());
}

/// The rpm databases rpm wrote (`tests/data/rpm`) are read at the paths
/// each distribution keeps them, and nothing is said about them but their
/// packages.
#[test]
fn rpm_databases_of_every_format() {
    let sqlite = crate::rpm::tests::fixture("rpmdb.sqlite");
    let bdb = crate::rpm::tests::fixture("Packages");
    let ndb = crate::rpm::tests::fixture("Packages.db");
    let cases: [(&str, &[u8]); 5] = [
        ("var/lib/rpm/rpmdb.sqlite", &sqlite),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", &sqlite),
        ("var/lib/rpm/Packages", &bdb),
        ("var/lib/rpm/Packages.db", &ndb),
        ("usr/lib/sysimage/rpm/Packages.db", &ndb),
    ];
    for (path, bytes) in cases {
        let layer = tar(&[
            ("etc/os-release", Some(b"ID=\"rocky\"\nVERSION_ID=\"8.9\"\n")),
            (path, Some(bytes)),
        ]);
        let facts = read_layer(&layer[..], &Limits::default()).unwrap();
        assert!(facts.warnings.is_empty(), "{path}: {:?}", facts.warnings);
        let image = merge([("sha256:l1", &facts)]);
        let mut got: Vec<(&str, &str, &str)> = image
            .components
            .iter()
            .map(|c| (c.package.name.as_str(), c.package.version.as_str(), c.purl.as_str()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "portcullis-big",
                    "20240101-7.el8",
                    "pkg:rpm/rocky/portcullis-big@20240101-7.el8?arch=x86_64&distro=rocky-8.9"
                ),
                (
                    "portcullis-epoch",
                    "2:3.4.5-6.el8_9",
                    "pkg:rpm/rocky/portcullis-epoch@3.4.5-6.el8_9?arch=x86_64&epoch=2&distro=rocky-8.9"
                ),
                (
                    "portcullis-tiny",
                    "1.0-1",
                    "pkg:rpm/rocky/portcullis-tiny@1.0-1?arch=noarch&distro=rocky-8.9"
                ),
            ],
            "{path}"
        );
        assert!(image.components.iter().all(|c| c.path == path));
    }
}

/// A distroless image: one control file a package under `status.d`, its
/// md5sums beside it (`tests/data/dpkg`). Only the control files are
/// package records; the md5sums are neither read nor warned about.
#[test]
fn distroless_status_d_with_md5sums() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dpkg/status.d");
    let files: Vec<(String, Vec<u8>)> = ["libssl3", "libssl3.md5sums", "tzdata", "tzdata.md5sums"]
        .iter()
        .map(|n| {
            (
                format!("var/lib/dpkg/status.d/{n}"),
                std::fs::read(format!("{dir}/{n}")).unwrap(),
            )
        })
        .collect();
    let mut entries: Vec<(&str, Option<&[u8]>)> = vec![(
        "etc/os-release",
        Some(b"PRETTY_NAME=\"Distroless\"\nID=debian\nVERSION_ID=\"12\"\n"),
    )];
    entries.extend(files.iter().map(|(p, b)| (p.as_str(), Some(b.as_slice()))));
    let facts = read_layer(&tar(&entries)[..], &Limits::default()).unwrap();
    assert!(facts.warnings.is_empty(), "{:?}", facts.warnings);
    assert_eq!(
        facts.package_dbs.keys().collect::<Vec<_>>(),
        ["var/lib/dpkg/status.d/libssl3", "var/lib/dpkg/status.d/tzdata"]
    );
    let image = merge([("sha256:distroless", &facts)]);
    assert!(image.warnings.is_empty(), "{:?}", image.warnings);
    let got: Vec<(&str, &str, &str, &str, Option<&str>)> = image
        .components
        .iter()
        .map(|c| {
            let p = &c.package;
            (
                p.name.as_str(),
                p.version.as_str(),
                p.source_name.as_str(),
                p.source_version.as_str(),
                p.architecture.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "libssl3",
                "3.0.22-1~deb12u2",
                "openssl",
                "3.0.22-1~deb12u2",
                Some("amd64")
            ),
            ("tzdata", "2026f-0+deb12u1", "tzdata", "2026f-0+deb12u1", Some("all")),
        ]
    );
    let (ecosystem, _) = crate::distro::distro_ecosystem(image.os.as_ref().unwrap()).unwrap();
    assert_eq!(ecosystem, "Debian:12");
}

/// Wolfi after its /usr merge keeps the apk database in `usr/lib`.
#[test]
fn wolfi_apk_database_under_usr_lib() {
    let installed = b"P:libcrypto3\nV:3.1.2-r0\nA:x86_64\nL:Apache-2.0\nT:OpenSSL libcrypto library\no:openssl\n\n";
    let layer = tar(&[
        (
            "usr/lib/os-release",
            Some(b"ID=wolfi\nNAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\n"),
        ),
        ("usr/lib/apk/db/installed", Some(installed)),
    ]);
    let facts = read_layer(&layer[..], &Limits::default()).unwrap();
    let image = merge([("sha256:wolfi", &facts)]);
    assert_eq!(image.os.as_ref().map(|o| o.id.as_str()), Some("wolfi"));
    let got: Vec<(&str, &str, &str)> = image
        .components
        .iter()
        .map(|c| (c.package.name.as_str(), c.package.source_name.as_str(), c.path.as_str()))
        .collect();
    assert_eq!(got, [("libcrypto3", "openssl", "usr/lib/apk/db/installed")]);
}

/// Bytes that do not compress (xorshift), so a layer of them is many
/// pipe chunks compressed as well as decompressed.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A pipeline of threads reads a layer into the facts one thread reads, or fail the
/// same way: layers many times the pipe's size, layers whose walk stops
/// before their stream ends (at the end of the archive, at the entry
/// limit), bombs, broken streams.
#[test]
fn a_pipeline_reads_what_one_thread_reads() {
    let limits = Limits {
        max_layer_bytes: 8 << 20,
        max_file_bytes: 1 << 20,
        max_entries: 1000,
    };
    let noise = noise(3 << 20);
    let big = tar(&[
        ("etc/os-release", Some(DEBIAN.as_bytes())),
        ("srv/noise", Some(&noise)),
        ("var/lib/dpkg/status", Some(STATUS_2.as_bytes())),
        ("var/lib/dpkg/status.d/.wh..wh..opq", Some(b"")),
        ("usr/lib/python3/dist-packages/.wh.six", Some(b"")),
    ]);
    let mut trailing = base_layer();
    trailing.extend_from_slice(&noise);
    let many: Vec<String> = (0..1500).map(|i| format!("f{i}")).collect();
    let many = tar(&many.iter().map(|p| (p.as_str(), Some(&b"x"[..]))).collect::<Vec<_>>());
    let bomb = gzip(&tar(&[("zeros", Some(&vec![0u8; 64 << 20]))]));
    let whole = gzip(&big);
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    // What each must come to, so an agreement on nothing can't pass.
    let cases: [(&str, Vec<u8>, &str); 13] = [
        ("plain", base_layer(), "ok"),
        ("gzip", gzip(&base_layer()), "ok"),
        ("zstd", zstd(&base_layer()), "ok"),
        ("large plain", big.clone(), "ok"),
        ("large gzip", whole.clone(), "ok"),
        ("large zstd", zstd(&big), "ok"),
        ("data after the end of the archive", gzip(&trailing), "ok"),
        ("too many entries", gzip(&many), "TooManyEntries"),
        ("bomb", bomb, "TooLarge"),
        ("truncated", whole[..whole.len() / 2].to_vec(), "Corrupt"),
        (
            "truncated at a chunk's edge",
            whole[..(1 << 20) + 17].to_vec(),
            "Corrupt",
        ),
        ("garbage", garbage, "Corrupt"),
        ("empty", Vec::new(), "ok"),
    ];
    for (what, blob, want) in cases {
        let one = read_layer_with(&blob[..], &limits, Threads::One);
        let piped = read_layer_with(&blob[..], &limits, Threads::Pipeline);
        let kind = |r: &Result<LayerFacts, LayerError>| match r {
            Ok(_) => "ok",
            Err(LayerError::TooLarge(_)) => "TooLarge",
            Err(LayerError::TooManyEntries(_)) => "TooManyEntries",
            Err(LayerError::Corrupt(_)) => "Corrupt",
        };
        assert_eq!(kind(&one), want, "{what}: {one:?}");
        match (one, piped) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
            (a, b) => panic!("{what}: one thread {a:?}, a pipeline {b:?}"),
        }
    }
    let large = read_layer_with(&whole[..], &limits, Threads::Pipeline).unwrap();
    assert_eq!(large.package_dbs["var/lib/dpkg/status"].packages.len(), 3);
    assert_eq!(large.whiteouts, ["usr/lib/python3/dist-packages/six"]);
}

/// An image whose layers are each read by a pipeline of threads merges into the
/// image one thread reads: packages upgraded, deleted by whiteouts and
/// hidden by an opaque directory, each credited to the same layer.
#[test]
fn an_image_merges_alike_read_on_one_thread_or_a_pipeline() {
    let layers = [
        gzip(&tar(&[
            ("etc/os-release", Some(DEBIAN.as_bytes())),
            ("var/lib/dpkg/status", Some(STATUS_1.as_bytes())),
            ("srv/padding", Some(&noise(2 << 20))),
            (
                "var/lib/dpkg/status.d/tzdata",
                Some(b"Package: tzdata\nVersion: 2021a-1\n"),
            ),
            (
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                Some(b"Name: six\nVersion: 1.16.0\n"),
            ),
        ])),
        zstd(&tar(&[
            ("var/lib/dpkg/status", Some(STATUS_2.as_bytes())),
            ("var/lib/dpkg/status.d/.wh..wh..opq", Some(b"")),
            (
                "var/lib/dpkg/status.d/base-files",
                Some(b"Package: base-files\nVersion: 11.1\n"),
            ),
        ])),
        tar(&[("usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info", Some(b""))]),
    ];
    let digests = ["sha256:l1", "sha256:l2", "sha256:l3"];
    let read = |threads| -> ImageFacts {
        let facts: Vec<LayerFacts> = layers
            .iter()
            .map(|l| read_layer_with(&l[..], &Limits::default(), threads).unwrap())
            .collect();
        merge(digests.into_iter().zip(&facts))
    };
    let one = read(Threads::One);
    assert_eq!(
        introduced(&one),
        [
            ("libc6", "2.31-13+deb11u5", "sha256:l2"),
            ("bash", "5.1-2", "sha256:l1"),
            ("curl", "7.74.0-1.3", "sha256:l2"),
            ("base-files", "11.1", "sha256:l2"),
        ],
        "tzdata hidden by the opaque directory, six deleted"
    );
    assert_eq!(read(Threads::Pipeline), one);
}
