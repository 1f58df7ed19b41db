//! `portcullis db import` and `portcullis scan` as a user runs them: on an
//! OCI layout, on skopeo's oci-archive and docker-archive output, and on
//! an image pushed to a running Portcullis that wants credentials.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{have_tool, tar_of, write_layout, ServerProcess};
use portcullis_oci::Digest;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vulndb/sample.osv.jsonl");

fn portcullis(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("PORTCULLIS_ANONYMOUS")
        .output()
        .unwrap()
}

/// An OCI layout at `dir` with one image tagged `tag` whose layers are the
/// given tars (gzip-compressed); returns the layers' blob digests and diff ids.
const BASE_STATUS: &str =
    "Package: base-files\nStatus: install ok installed\nVersion: 11.1+deb11u5\nArchitecture: amd64\n\n\
Package: libzmq5\nStatus: install ok installed\nVersion: 4.3.4-1\nSource: zeromq3\nArchitecture: amd64\n";

/// A Debian 11 base layer, and a second layer that installs the X server
/// at a version DSA-5380-1 says is vulnerable (fixed in 2:1.20.11-1+deb11u6).
fn debian_image(dir: &Path) -> Vec<(Digest, Digest)> {
    let base = tar_of(&[
        (
            "etc/os-release",
            b"ID=debian\nVERSION_ID=\"11\"\nPRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\n",
        ),
        ("var/lib/dpkg/status", BASE_STATUS.as_bytes()),
    ]);
    let with_x = format!(
        "{BASE_STATUS}\nPackage: xserver-xorg-core\nStatus: install ok installed\nVersion: 2:1.20.11-1+deb11u5\nSource: xorg-server\nArchitecture: amd64\n"
    );
    let top = tar_of(&[("var/lib/dpkg/status", with_x.as_bytes())]);
    write_layout(dir, "v1", &[base, top])
}

fn json_scan(data: &Path, target: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["scan", target, "--format", "json"];
    args.extend_from_slice(extra);
    let out = portcullis(data, &args);
    assert!(
        out.status.success(),
        "scan {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The finding a user relies on, in the shape they read it.
fn assert_dsa_5380(report: &serde_json::Value, top_layer: &str) {
    let vulns = report["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 1, "{vulns:#?}");
    let v = &vulns[0];
    assert_eq!(v["ids"], serde_json::json!(["DSA-5380-1"]));
    assert_eq!(v["related"], serde_json::json!(["CVE-2023-1393"]));
    assert_eq!(v["package"], "xserver-xorg-core");
    assert_eq!(v["version"], "2:1.20.11-1+deb11u5");
    assert_eq!(v["fixed_version"], "2:1.20.11-1+deb11u6");
    assert_eq!(v["ecosystem"], "Debian:11");
    assert_eq!(v["severity"], "Unknown", "Debian's lists carry no severity");
    assert_eq!(v["layer"], top_layer, "the layer that installed it");
    assert_eq!(v["path"], "var/lib/dpkg/status");
    assert_eq!(report["os"]["id"], "debian");
    let layers = report["layers"].as_array().unwrap();
    let per_layer: Vec<(u64, u64)> = layers
        .iter()
        .map(|l| {
            (
                l["components"].as_u64().unwrap(),
                l["vulnerabilities"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_layer, [(2, 0), (1, 1)]);
    assert_eq!(report["summary"]["unknown"], 1);
}

#[test]
fn scan_an_oci_layout_with_the_imported_database() {
    let data = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let layers = debian_image(image.path());
    let target = format!("oci:{}:v1", image.path().display());

    // Without a database: components, no findings, and --fail-on refuses.
    let report = json_scan(data.path(), &target, &[]);
    assert_eq!(report["components"].as_array().unwrap().len(), 3);
    assert!(report["database"].is_null());
    let out = portcullis(data.path(), &["scan", &target, "--fail-on", "low"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("db import"));

    let out = portcullis(data.path(), &["db", "import", SAMPLE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("30 records imported, 0 rejected"));
    let out = portcullis(data.path(), &["db", "status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["sources"][0]["records"], 30);

    let report = json_scan(data.path(), &target, &[]);
    assert_dsa_5380(&report, layers[1].0.as_str());
    assert_eq!(report["database"]["records"], 30);

    let out = portcullis(data.path(), &["scan", &target]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(table.contains("UNKNOWN (1)"), "{table}");
    assert!(
        table.contains("DSA-5380-1 (CVE-2023-1393)") && table.contains("2:1.20.11-1+deb11u6"),
        "{table}"
    );
    assert!(table.contains(&layers[1].0.hex()[..12]), "{table}");

    // --fail-on compares with the worst finding, which is of unknown severity.
    assert_eq!(
        portcullis(data.path(), &["scan", &target, "--fail-on", "unknown"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        portcullis(data.path(), &["scan", &target, "--fail-on", "low"])
            .status
            .code(),
        Some(0)
    );

    // A bare directory means the same; a missing tag is named with the ones there are.
    let bare = json_scan(data.path(), &image.path().display().to_string(), &[]);
    assert_eq!(bare["vulnerabilities"], report["vulnerabilities"]);
    let out = portcullis(data.path(), &["scan", &format!("oci:{}:v2", image.path().display())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such tag (tags here: v1)"));
}

#[test]
fn a_compression_bomb_layer_stops_at_the_limit() {
    let data = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 64 << 20];
    write_layout(image.path(), "bomb", &[tar_of(&[("big", &zeros)])]);
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["scan", &format!("oci:{}:bomb", image.path().display()), "--data"])
        .arg(data.path())
        .env("PORTCULLIS_SCAN_MAX_LAYER_BYTES", (1u64 << 20).to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("compression bomb"), "{err}");
}

/// skopeo writes the archives; the scan sees the same image in each.
#[test]
fn scan_archives_and_a_registry_image_made_by_skopeo() {
    if !have_tool("skopeo") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let layers = debian_image(&layout);
    assert!(portcullis(data.path(), &["db", "import", SAMPLE]).status.success());
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let src = format!("oci:{}:v1", layout.display());
    let oci_archive: PathBuf = work.path().join("image.oci.tar");
    let docker_archive: PathBuf = work.path().join("image.docker.tar");
    skopeo(&["copy", &src, &format!("oci-archive:{}:v1", oci_archive.display())]);
    skopeo(&[
        "copy",
        &src,
        &format!("docker-archive:{}:acme/app:v1", docker_archive.display()),
    ]);

    let report = json_scan(data.path(), &format!("oci-archive:{}:v1", oci_archive.display()), &[]);
    assert_dsa_5380(&report, layers[1].0.as_str());
    // docker save layers are uncompressed: they go by their diff ids.
    let report = json_scan(
        data.path(),
        &format!("docker-archive:{}", docker_archive.display()),
        &[],
    );
    assert_dsa_5380(&report, layers[1].1.as_str());

    // A registry that wants credentials: the token flow, then streamed layers.
    let registry_data = work.path().join("registry");
    let password = "scan-test-admin-password";
    let server = ServerProcess::spawn_env(
        &registry_data,
        &[],
        &[
            ("PORTCULLIS_ANONYMOUS", "none"),
            ("PORTCULLIS_ADMIN_PASSWORD", password),
        ],
    );
    let host = server.base.trim_start_matches("http://").to_string();
    let creds = format!("admin:{password}");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &src,
        &format!("docker://{host}/admin/app:v1"),
    ]);
    let target = format!("docker://{host}/admin/app:v1");
    let report = json_scan(data.path(), &target, &["--tls-verify=false", "--creds", &creds]);
    assert_dsa_5380(&report, layers[1].0.as_str());
    assert!(report["manifest_digest"].as_str().unwrap().starts_with("sha256:"));
    for (creds, what) in [(None, "--creds"), (Some("admin:wrong"), "refused")] {
        let mut args = vec!["scan", target.as_str(), "--tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--creds", c]);
        }
        let out = portcullis(data.path(), &args);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{creds:?}: {err}");
    }
}

fn validate(kind: &str, path: &Path) -> Output {
    Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/validate_sbom.py"))
        .arg(kind)
        .arg(path)
        .output()
        .unwrap()
}

fn sbom_tools_present() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import cyclonedx.validation.json, spdx_tools, lib4sbom, jsonschema",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && common::tools_required() {
        panic!("the SBOM validators (PyPI cyclonedx-python-lib, spdx-tools, lib4sbom) are required but missing");
    }
    ok
}

/// Debian, Python and npm components with findings in each, written as
/// SPDX and CycloneDX, checked by the SBOM projects' own validators.
#[test]
fn sboms_validate_against_the_official_schemas() {
    if !sbom_tools_present() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let mut layers = vec![];
    let base = tar_of(&[
        ("etc/os-release", b"ID=debian\nVERSION_ID=\"11\"\n"),
        (
            "var/lib/dpkg/status",
            b"Package: xserver-xorg-core\nStatus: install ok installed\nVersion: 2:1.20.11-1+deb11u5\nSource: xorg-server\nArchitecture: amd64\n",
        ),
    ]);
    layers.push(base);
    layers.push(tar_of(&[
        (
            "usr/lib/python3/dist-packages/py-1.11.0.dist-info/METADATA",
            b"Metadata-Version: 2.1\nName: py\nVersion: 1.11.0\nLicense: MIT license\n",
        ),
        (
            "srv/app/node_modules/mqtt-packet/package.json",
            br#"{"name":"mqtt-packet","version":"6.1.1","license":"MIT"}"#,
        ),
        (
            "srv/app/node_modules/@scope/odd/package.json",
            br#"{"name":"@scope/odd","version":"1.0.0","license":"BSD"}"#,
        ),
    ]));
    write_layout(image.path(), "v1", &layers);
    assert!(portcullis(data.path(), &["db", "import", SAMPLE]).status.success());
    let target = format!("oci:{}:v1", image.path().display());
    for kind in ["spdx", "cyclonedx"] {
        let out = portcullis(data.path(), &["scan", &target, "--format", kind]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let path = image.path().join(format!("sbom.{kind}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        let checked = validate(kind, &path);
        assert!(
            checked.status.success(),
            "{kind}: {}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if kind == "spdx" {
            let packages = doc["packages"].as_array().unwrap();
            assert_eq!(packages.len(), 5, "the image and four components");
            let purls: Vec<&str> = packages[1..]
                .iter()
                .map(|p| p["externalRefs"][0]["referenceLocator"].as_str().unwrap())
                .collect();
            assert!(purls.contains(&"pkg:pypi/py@1.11.0"), "{purls:?}");
            assert!(purls.contains(&"pkg:npm/%40scope/odd@1.0.0"), "{purls:?}");
            let odd = packages.iter().find(|p| p["name"] == "@scope/odd").unwrap();
            assert_eq!(odd["licenseDeclared"], "NOASSERTION", "BSD alone names no one license");
            let mqtt = packages.iter().find(|p| p["name"] == "mqtt-packet").unwrap();
            assert_eq!(mqtt["licenseDeclared"], "MIT");
            assert_eq!(
                mqtt["externalRefs"][1]["referenceLocator"],
                "https://osv.dev/vulnerability/NSWG-ECO-500"
            );
        } else {
            let vulns: Vec<&str> = doc["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap())
                .collect();
            assert_eq!(vulns, ["DSA-5380-1", "NSWG-ECO-500", "PYSEC-2022-42969"]);
            let nswg = &doc["vulnerabilities"][1];
            assert_eq!(nswg["ratings"][0]["severity"], "high");
            assert_eq!(nswg["ratings"][0]["score"], 7.5);
            assert_eq!(nswg["recommendation"], "Upgrade mqtt-packet to 6.1.2 or later");
        }
        // The validators do reject: the same document without a required field.
        let mut broken: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let required = if kind == "spdx" { "spdxVersion" } else { "specVersion" };
        broken.as_object_mut().unwrap().remove(required);
        std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
        assert!(
            !validate(kind, &path).status.success(),
            "{kind} without {required} must fail"
        );
    }
    // SARIF for code-scanning dashboards: one rule per vulnerability, one
    // result per finding, each pointing at its rule and saying who rated it.
    let out = portcullis(data.path(), &["scan", &target, "--format", "sarif"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!((rules.len(), results.len()), (3, 3));
    for r in results {
        let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
    }
    let nswg = results.iter().find(|r| r["ruleId"] == "NSWG-ECO-500").unwrap();
    assert_eq!(
        (
            &nswg["level"],
            &nswg["properties"]["severity_source"],
            &nswg["properties"]["fixed_version"]
        ),
        (
            &serde_json::json!("error"),
            &serde_json::json!("advisory"),
            &serde_json::json!("6.1.2")
        )
    );
    let rule = rules.iter().find(|r| r["id"] == "NSWG-ECO-500").unwrap();
    assert_eq!(rule["properties"]["security-severity"], "7.5");
    let unknown = results.iter().find(|r| r["ruleId"] == "PYSEC-2022-42969").unwrap();
    assert_eq!(unknown["level"], "note");
}

/// A real rpmdb.sqlite, written by rpm itself (Debian's rpm 4.18 keeps its
/// database in SQLite), in an AlmaLinux 8 image: the erratum ALSA-2025:10991
/// fixes microcode_ctl in 4:20250512-1.el8_10 and calls itself "Moderate".
#[test]
fn an_rpm_database_written_by_rpm() {
    if !have_tool("rpmbuild") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let top = work.path().join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    std::fs::write(
        top.join("SPECS/microcode.spec"),
        "Name: microcode_ctl\nEpoch: 4\nVersion: 20240531\nRelease: 1.el8_10\nSummary: test\n\
License: CC0-1.0\nBuildArch: noarch\n%description\ntest\n%files\n",
    )
    .unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["-bb", "--quiet"])
        .arg(top.join("SPECS/microcode.spec")));
    let dbpath = work.path().join("rootfs/var/lib/rpm");
    std::fs::create_dir_all(&dbpath).unwrap();
    run(Command::new("rpm").arg("--dbpath").arg(&dbpath).arg("--initdb"));
    let package = top.join("RPMS/noarch/microcode_ctl-20240531-1.el8_10.noarch.rpm");
    run(Command::new("rpm")
        .arg("--dbpath")
        .arg(&dbpath)
        .args(["-i", "--justdb", "--nodeps", "--ignorearch", "--ignoreos"])
        .arg(&package));
    let db = std::fs::read(dbpath.join("rpmdb.sqlite")).unwrap();
    let layer = tar_of(&[
        (
            "etc/os-release",
            b"NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"8.10\"\n",
        ),
        ("var/lib/rpm/rpmdb.sqlite", &db),
    ]);
    let layout = work.path().join("layout");
    write_layout(&layout, "8", &[layer]);
    let data = work.path().join("data");
    // AlmaLinux's rating counts from a source of AlmaLinux's records only,
    // as its own feed is imported (the sample mixes ecosystems).
    let alma = work.path().join("almalinux.jsonl");
    let records: String = std::fs::read_to_string(SAMPLE)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""ecosystem":"AlmaLinux:"#))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(records.lines().count(), 1);
    std::fs::write(&alma, records).unwrap();
    assert!(portcullis(&data, &["db", "import", SAMPLE, alma.to_str().unwrap()])
        .status
        .success());
    let report = json_scan(&data, &format!("oci:{}:8", layout.display()), &[]);
    let components = report["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{components:?}");
    assert_eq!(
        components[0]["purl"],
        "pkg:rpm/almalinux/microcode_ctl@20240531-1.el8_10?arch=noarch&epoch=4&distro=almalinux-8.10"
    );
    let v = &report["vulnerabilities"][0];
    assert_eq!(v["ids"], serde_json::json!(["ALSA-2025:10991"]));
    assert_eq!(v["related"], serde_json::json!(["CVE-2024-28956"]));
    assert_eq!(
        (&v["severity"], &v["severity_source"]),
        (&serde_json::json!("Medium"), &serde_json::json!("almalinux"))
    );
    assert_eq!(v["fixed_version"], "4:20250512-1.el8_10");
    assert_eq!(v["ecosystem"], "AlmaLinux:8");
}

/// `db import` killed part-way (SIGKILL, no chance to clean up) leaves the
/// previous database in force, whole; the next import succeeds.
#[test]
fn a_killed_import_changes_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let data = tempfile::tempdir().unwrap();
    assert!(portcullis(data.path(), &["db", "import", SAMPLE]).status.success());
    let mut before = Vec::new();
    let shared = Path::new(SAMPLE).parent().unwrap();
    let inputs: Vec<PathBuf> = ["almalinux", "debian", "go", "pypi", "alpine", "crates", "npm"]
        .iter()
        .map(|n| shared.join(format!("{n}.osv.jsonl.gz")))
        .collect();
    let mut killed = false;
    for delay_ms in [300, 150, 60, 20] {
        before = portcullis(data.path(), &["db", "status", "--format", "json"]).stdout;
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["db", "import", "--data"])
            .arg(data.path())
            .args(&inputs)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed = true;
            break;
        }
        // It finished first: that import is in force now; try again sooner.
        assert!(portcullis(data.path(), &["db", "import", "--replace", SAMPLE])
            .status
            .success());
    }
    assert!(killed, "every import finished before it could be killed");
    let after = portcullis(data.path(), &["db", "status", "--format", "json"]).stdout;
    let (before, after): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&before).unwrap(),
        serde_json::from_slice(&after).unwrap(),
    );
    assert_eq!(after, before, "the killed import is not in force");
    assert_eq!(after["sources"][0]["records"], 30);
    let out = portcullis(data.path(), &["db", "import", SAMPLE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// On a terminal `db import` draws a progress bar per source; piped, it
/// prints only its report.
#[test]
fn import_progress_on_a_terminal_only() {
    if !have_tool("script") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} db import --data {} {SAMPLE}",
        env!("CARGO_BIN_EXE_portcullis"),
        data.path().display()
    );
    // script(1) runs the command on a pseudo-terminal.
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("sample.osv.jsonl") && shown.contains("[===="), "{shown}");
    let piped = portcullis(data.path(), &["db", "import", SAMPLE]);
    let text = String::from_utf8_lossy(&piped.stdout).to_string() + &String::from_utf8_lossy(&piped.stderr);
    assert!(!text.contains("[="), "{text}");
    assert!(text.contains("30 records imported"));
}

/// `scan` follows a dpkg database that is a symlink into the layer below,
/// and an npm manifest hard-linked within its layer, as the registry does.
#[test]
fn scan_follows_package_databases_behind_links() {
    let data = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let status = b"Package: tucked-away\nStatus: install ok installed\nVersion: 3.1-2\n";
    write_layout(
        image.path(),
        "v1",
        &[
            common::tar_of(&[
                ("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n"),
                ("srv/dpkg", status),
            ]),
            common::tar_with_link(None, ("var/lib/dpkg/status", "/srv/dpkg"), false),
            common::tar_with_link(
                Some(("opt/p.json", b"{\"name\": \"left-pad\", \"version\": \"1.3.0\"}")),
                ("usr/lib/node_modules/left-pad/package.json", "opt/p.json"),
                true,
            ),
        ],
    );
    let report = json_scan(data.path(), &format!("oci:{}:v1", image.path().display()), &[]);
    let mut names: Vec<&str> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["package"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["left-pad", "tucked-away"], "{report}");
}

/// Layers read four at once (the large base finishing last) merge into
/// the image they merge into read one at a time: `buffered` keeps layer
/// order whatever order the reads finish in.
#[test]
fn layers_read_at_once_merge_as_one_at_a_time() {
    let data = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let layers = write_layout(image.path(), "v1", &common::overlay_layers());
    let target = format!("oci:{}:v1", image.path().display());
    let scan = |workers: &str| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["scan", &target, "--format", "json", "--data"])
            .arg(data.path())
            .env("PORTCULLIS_SCAN_LAYER_WORKERS", workers)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let one = scan("1");
    let got: Vec<(String, String, String)> = one["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["package"]["name"].as_str().unwrap().to_string(),
                c["package"]["version"].as_str().unwrap().to_string(),
                c["layer"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = common::OVERLAY_COMPONENTS
        .iter()
        .map(|(n, v, l)| (n.to_string(), v.to_string(), layers[*l].0.to_string()))
        .collect();
    assert_eq!(got, want);
    for workers in ["4", "0"] {
        let many = scan(workers);
        for key in ["os", "components", "layers", "warnings"] {
            assert_eq!(many[key], one[key], "{key} with {workers} layer workers");
        }
    }
}
