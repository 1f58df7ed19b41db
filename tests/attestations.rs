//! in-toto attestations through the CLI (`portcullis attest`,
//! `portcullis verify-attestation`) against a real server, on SQLite and
//! PostgreSQL: both of cosign's forms written and read back, what we write
//! checked by independent verifiers (Python `cryptography` for the `.att`
//! DSSE envelopes, sigstore-js for the bundles), every refusal named; and
//! real attestations written by others (GitHub, slsa-github-generator,
//! Tekton Chains through cosign, GitLab Runner) parsed and their builder
//! and source read.

mod common;

use base64::Engine;
use common::signing::{admin_cli as run, attest_cli, host, key_files, path, register_key, trusted_team};
use common::{backends, TestServer};
use portcullis_oci::Digest;
use portcullis_sign::attestation::{self, provenance, ProvenanceRule, Rejection, Statement};
use serde_json::{json, Value};

const V1: &str = "https://slsa.dev/provenance/v1";
const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const BUILDER: &str = "https://ci.acme.example/runners/7";

/// A SLSA v1 provenance predicate as a CI would write it.
fn provenance_v1() -> Value {
    json!({
        "buildDefinition": {
            "buildType": "https://ci.acme.example/buildtypes/container/v1",
            "externalParameters": {"workflow": {"repository": "https://git.acme.example/acme/app",
                                                "ref": "refs/heads/main", "path": ".ci/build.yml"}},
            "resolvedDependencies": [{"uri": "git+https://git.acme.example/acme/app@refs/heads/main",
                                      "digest": {"gitCommit": "5f0c6a1e4b1d6a1c0b8e2f0d9a7c3b2a1e0f9d8c"}}],
        },
        "runDetails": {"builder": {"id": BUILDER}, "metadata": {"invocationId": "build-42"}},
    })
}

/// `portcullis attest IMAGE --type slsaprovenance1 --predicate FILE --key KEY` (tag form).
async fn attest_provenance(s: &TestServer, image: &str, predicate: &str, key: &str) -> (i32, Value, String, String) {
    attest_cli(s, image, ("slsaprovenance1", predicate, key, "tag"), &[]).await
}

async fn blob(s: &TestServer, repo: &str, digest: &str) -> bytes::Bytes {
    let r = s
        .http
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap()
}

async fn manifest(s: &TestServer, repo: &str, reference: &str) -> Value {
    serde_json::from_slice(&s.manifest_bytes(repo, reference).await).unwrap()
}

/// `tests/verify_dsse.py`: Python `cryptography`'s verdict on an envelope.
fn python_verifies(envelope: &str, key: &str, image: &Digest, predicate_type: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verify_dsse.py");
    let out = std::process::Command::new("python3")
        .args([script, envelope, key, image.as_str(), predicate_type])
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

/// `tests/node/verify_bundle.js`: sigstore-js's verdict on a bundle.
fn sigstore_js_verifies(bundle: &str, key: &str, image: &Digest) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/verify_bundle.js");
    let out = std::process::Command::new("node")
        .args([script, bundle, key, image.as_str()])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `attest` writes the `.att` tag (appending, as cosign does) and the
/// bundle referrer; Python `cryptography` and sigstore-js verify what it
/// wrote with the signer's key and refuse another's; `verify-attestation`
/// finds both forms, by key and by team, and reads the builder and
/// source; attestations are not taken for signatures by `verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_forms_are_written_and_independent_verifiers_agree() {
    assert!(common::have_tool("node"), "node is needed for the sigstore-js check");
    assert!(
        common::have_tool("python3"),
        "python3 (cryptography) is needed for the DSSE check"
    );
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        trusted_team(&s, &["alice", "mallory"], &["alice"]).await;
        register_key(&s, dir, "alice").await;
        key_files(dir, "alice");
        key_files(dir, "mallory");
        std::fs::write(dir.join("provenance.json"), provenance_v1().to_string()).unwrap();
        std::fs::write(dir.join("notes.txt"), "reviewed by two people\n").unwrap();

        let (image, _) = s.push_image("acme/app", "1", b"{\"app\":1}", &[b"app layer"]).await;
        let img = format!("docker://{}/acme/app:1", host(&s));
        let attest = |kind: &'static str, predicate: &'static str, form: &'static str| {
            let (img, key, predicate) = (img.clone(), path(dir, "alice.p8"), path(dir, predicate));
            let s = &s;
            async move { attest_cli(s, &img, (kind, &predicate, &key, form), &["--format", "json"]).await }
        };
        // Two attestations in the tag form: the second is appended.
        let (code, v, _, err) = attest("slsaprovenance1", "provenance.json", "tag").await;
        assert_eq!(code, 0, "{label}: {err}");
        let att = format!("sha256-{}.att", image.hex());
        assert_eq!(
            (
                v["digest"].as_str(),
                v["attestation"].as_str(),
                v["predicate_type"].as_str()
            ),
            (Some(image.as_str()), Some(att.as_str()), Some(V1))
        );
        let (code, _, _, err) = attest("custom", "notes.txt", "tag").await;
        assert_eq!(code, 0, "{label}: {err}");
        let m = manifest(&s, "acme/app", &att).await;
        let layers = m["layers"].as_array().unwrap();
        let types: Vec<&str> = layers
            .iter()
            .map(|l| l["annotations"]["predicateType"].as_str().unwrap())
            .collect();
        assert_eq!(types, [V1, CUSTOM], "{label}: {m}");
        for (layer, predicate_type) in layers.iter().zip(types) {
            assert_eq!(layer["mediaType"], DSSE);
            let envelope = blob(&s, "acme/app", layer["digest"].as_str().unwrap()).await;
            let file = path(dir, "envelope.json");
            std::fs::write(&file, &envelope).unwrap();
            assert!(
                python_verifies(&file, &path(dir, "alice.pub"), &image, predicate_type),
                "{label}"
            );
            assert!(!python_verifies(
                &file,
                &path(dir, "mallory.pub"),
                &image,
                predicate_type
            ));
            assert!(!python_verifies(
                &file,
                &path(dir, "alice.pub"),
                &Digest::sha256_of(b"x"),
                predicate_type
            ));
            // The statement as cosign shapes it: subject named by repository.
            let e: Value = serde_json::from_slice(&envelope).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD;
            let statement: Value =
                serde_json::from_slice(&b64.decode(e["payload"].as_str().unwrap()).unwrap()).unwrap();
            assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
            assert_eq!(statement["subject"][0]["name"], format!("{}/acme/app", host(&s)));
            if predicate_type == CUSTOM {
                assert_eq!(statement["predicate"]["Data"], "reviewed by two people\n");
            } else {
                assert_eq!(statement["predicate"], provenance_v1());
            }
        }

        // The bundle form: a referrer whose layer sigstore-js verifies.
        let (code, v, _, err) = attest("slsaprovenance1", "provenance.json", "bundle").await;
        assert_eq!(code, 0, "{label}: {err}");
        let referrer = manifest(&s, "acme/app", v["attestation"].as_str().unwrap()).await;
        assert_eq!(referrer["artifactType"], BUNDLE);
        assert_eq!(referrer["subject"]["digest"], image.as_str());
        assert_eq!(referrer["annotations"]["dev.sigstore.bundle.predicateType"], V1);
        let bundle = blob(&s, "acme/app", referrer["layers"][0]["digest"].as_str().unwrap()).await;
        std::fs::write(dir.join("bundle.json"), &bundle).unwrap();
        let (ok, out) = sigstore_js_verifies(&path(dir, "bundle.json"), &path(dir, "alice.pub"), &image);
        assert!(ok && out.contains(V1), "{label}: {out}");
        let (ok, out) = sigstore_js_verifies(&path(dir, "bundle.json"), &path(dir, "mallory.pub"), &image);
        assert!(!ok, "{out}");

        // verify-attestation reads both forms, by key and by team.
        let alice_pub = path(dir, "alice.pub");
        let globs = [
            "--builder-id",
            "https://ci.acme.example/runners/*",
            "--source-uri",
            "https://git.acme.example/acme/*",
        ];
        let by_key = [
            &[
                "verify-attestation",
                &img,
                "--type",
                "slsaprovenance1",
                "--key",
                &alice_pub,
            ][..],
            &globs,
        ]
        .concat();
        let (code, v, _, err) = run(&s, &[&by_key[..], &["--format", "json"]].concat()).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        let found = v["attestations"].as_array().unwrap();
        let forms: Vec<&str> = found.iter().map(|a| a["form"].as_str().unwrap()).collect();
        assert_eq!(forms, ["tag", "bundle"], "{v}");
        assert_eq!(found[0]["builder_id"], BUILDER);
        assert_eq!(found[0]["source_uri"], "https://git.acme.example/acme/app");
        assert_eq!(
            found[0]["dependencies"],
            json!(["git+https://git.acme.example/acme/app@refs/heads/main"])
        );
        assert_eq!(found[0]["statement"]["predicate"], provenance_v1());
        let (code, _, out, err) = run(&s, &by_key).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("verified {}/acme/app@{image}: {V1}", host(&s))),
            "{out}"
        );
        let by_team = [
            "verify-attestation",
            &img,
            "--type",
            V1,
            "--team",
            "ci/gitlab",
            "--registry",
            &s.base,
            "--format",
            "json",
        ];
        let (code, v, _, err) = run(&s, &by_team).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        assert_eq!(v["attestations"][0]["account"], "alice", "{v}");
        let (code, v, _, _) = run(
            &s,
            &[
                "verify-attestation",
                &img,
                "--type",
                "custom",
                "--key",
                &alice_pub,
                "--format",
                "json",
            ],
        )
        .await;
        assert_eq!((code, v["attestations"].as_array().map(Vec::len)), (0, Some(1)), "{v}");

        // An attestation is not a signature.
        let (code, v, _, _) = run(&s, &["verify", &img, "--key", &alice_pub, "--format", "json"]).await;
        assert_eq!(code, 1, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("no signatures"), "{v}");
    }
}

/// Every refusal of `verify-attestation` exits 1 and names what was
/// missing; errors exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_attestation_refuses_what_does_not_hold() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        key_files(dir, "alice");
        key_files(dir, "stranger");
        std::fs::write(dir.join("provenance.json"), provenance_v1().to_string()).unwrap();
        let key = portcullis_sign::SigningKey::from_pkcs8(&std::fs::read(dir.join("alice.der")).unwrap()).unwrap();
        let mut images = Vec::new();
        for n in 1..=6u8 {
            let config = format!("{{\"app\":{n}}}");
            images.push(
                s.push_image("acme/app", &n.to_string(), config.as_bytes(), &[&[n]])
                    .await
                    .0,
            );
        }
        let name = format!("{}/acme/app", host(&s));
        let img = |n: usize| format!("docker://{name}:{n}");
        let b64 = base64::engine::general_purpose::STANDARD;

        // 1: attested by the CLI. 2: nothing.
        let (code, _, _, err) =
            attest_provenance(&s, &img(1), &path(dir, "provenance.json"), &path(dir, "alice.p8")).await;
        assert_eq!(code, 0, "{label}: {err}");
        // 3: image 1's `.att` manifest under image 3's tag (a statement about image 1).
        let att1 = s
            .manifest_bytes("acme/app", &format!("sha256-{}.att", images[0].hex()))
            .await;
        let r = s
            .put_manifest("acme/app", &format!("sha256-{}.att", images[2].hex()), att1.to_vec())
            .await;
        assert_eq!(r.status(), 201);
        // 4: an envelope for image 4 whose statement was changed after signing.
        let statement = attestation::build_statement(&name, &images[3], V1, provenance_v1());
        let mut envelope = attestation::envelope(&key, &statement).unwrap();
        let forged = String::from_utf8(statement).unwrap().replace("runners/7", "runners/6");
        envelope["payload"] = b64.encode(forged).into();
        let bytes = serde_json::to_vec(&envelope).unwrap();
        let layer = s.push_blob("acme/app", &bytes).await;
        let config = s.push_blob("acme/app", b"{}").await;
        let m = attestation::attestation_manifest_adding(None, &config, 2, (&layer, bytes.len(), V1), None).unwrap();
        let r = s
            .put_manifest("acme/app", &format!("sha256-{}.att", images[3].hex()), m)
            .await;
        assert_eq!(r.status(), 201);
        // 5: a bundle for image 5, changed after signing; 6: a bundle about image 1 attached to image 6.
        let bundle_for = |subject: &Digest, about: &Digest, tamper: bool| {
            let statement = attestation::build_statement(&name, about, V1, provenance_v1());
            let mut b: Value =
                serde_json::from_slice(&portcullis_sign::sign_statement_bundle(&key, &statement).unwrap()).unwrap();
            if tamper {
                let forged = String::from_utf8(statement)
                    .unwrap()
                    .replace("acme/app\"", "acme/other\"");
                b["dsseEnvelope"]["payload"] = b64.encode(forged).into();
            }
            (subject.clone(), serde_json::to_vec(&b).unwrap())
        };
        for (subject, bundle) in [
            bundle_for(&images[4], &images[4], true),
            bundle_for(&images[5], &images[0], false),
        ] {
            let b = s.push_blob("acme/app", &bundle).await;
            let m = portcullis_sign::bundle_manifest(
                ("application/vnd.oci.image.manifest.v1+json", &subject, 0),
                (&b, bundle.len()),
                V1,
                "2026-12-07T00:00:00Z",
            );
            let r = s.put_manifest("acme/app", Digest::sha256_of(&m).as_str(), m).await;
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }

        // (case, image, predicate type, trusted key, extra arguments, exit code, the reason says)
        let table: &[(&str, usize, &str, &str, &[&str], i32, &str)] = &[
            (
                "the right one",
                1,
                "slsaprovenance1",
                "alice",
                &[
                    "--builder-id",
                    "https://ci.acme.example/runners/*",
                    "--source-uri",
                    "https://git.acme.example/acme/app",
                ],
                0,
                "",
            ),
            (
                "no attestation",
                2,
                "slsaprovenance1",
                "alice",
                &[],
                1,
                "no attestation of type https://slsa.dev/provenance/v1",
            ),
            (
                "another type only",
                1,
                "spdxjson",
                "alice",
                &[],
                1,
                "no attestation of type https://spdx.dev/Document (1 of other types)",
            ),
            (
                "wrong builder",
                1,
                "slsaprovenance1",
                "alice",
                &["--builder-id", "https://evil.example/*"],
                1,
                "builder id https://ci.acme.example/runners/7 matches none of [https://evil.example/*]",
            ),
            (
                "wrong source",
                1,
                "slsaprovenance1",
                "alice",
                &["--source-uri", "git+https://evil.example/*"],
                1,
                "matches none of [git+https://evil.example/*]",
            ),
            (
                "any builder",
                1,
                "slsaprovenance1",
                "alice",
                &["--builder-id", "**"],
                0,
                "",
            ),
            (
                "* stays within a path segment",
                1,
                "slsaprovenance1",
                "alice",
                &["--builder-id", "*"],
                1,
                "matches none of [*]",
            ),
            (
                "untrusted signer",
                1,
                "slsaprovenance1",
                "stranger",
                &[],
                1,
                "verifies under no trusted key",
            ),
            (
                "subject of another digest",
                3,
                "slsaprovenance1",
                "alice",
                &[],
                1,
                "its subject is another image",
            ),
            (
                "tampered envelope",
                4,
                "slsaprovenance1",
                "alice",
                &[],
                1,
                "verifies under no trusted key",
            ),
            (
                "tampered bundle",
                5,
                "slsaprovenance1",
                "alice",
                &[],
                1,
                "verifies under no trusted key",
            ),
            (
                "another digest's bundle",
                6,
                "slsaprovenance1",
                "alice",
                &[],
                1,
                "its subject is another image",
            ),
        ];
        for (case, n, kind, signer, extra, want, says) in table {
            let key = path(dir, &format!("{signer}.pub"));
            let image = img(*n);
            let args = [
                &[
                    "verify-attestation",
                    &image,
                    "--type",
                    *kind,
                    "--key",
                    &key,
                    "--format",
                    "json",
                ][..],
                *extra,
            ]
            .concat();
            let (code, v, _, err) = run(&s, &args).await;
            assert_eq!(code, *want, "{label} {case}: {v} {err}");
            assert_eq!(v["verified"], *want == 0, "{label} {case}: {v}");
            if *want == 1 {
                let reason = v["reason"].as_str().unwrap_or_default();
                assert!(reason.contains(says), "{label} {case}: {reason}");
            }
        }
        // Text output names the refusal too.
        let (code, _, out, _) = run(
            &s,
            &[
                "verify-attestation",
                &img(2),
                "--type",
                V1,
                "--key",
                &path(dir, "alice.pub"),
            ],
        )
        .await;
        assert_eq!(code, 1);
        assert!(
            out.starts_with(&format!("NOT verified {name}@{}: no attestation", images[1])),
            "{out}"
        );
        // Errors: an unknown type name, a bad glob, a missing image, no trust.
        let errors: &[(&[&str], &str)] = &[
            (&["--type", "slsa", "--key", "K"], "unknown predicate type"),
            (&["--type", "vuln", "--key", "K", "--builder-id", "a["], "bad glob"),
        ];
        for (extra, says) in errors {
            let key = path(dir, "alice.pub");
            let extra: Vec<&str> = extra
                .iter()
                .map(|a| if *a == "K" { key.as_str() } else { *a })
                .collect();
            let (code, _, _, err) = run(&s, &[&["verify-attestation", &img(1)][..], &extra[..]].concat()).await;
            assert_eq!(code, 2, "{extra:?}: {err}");
            assert!(err.contains(says), "{err}");
        }
        let missing = format!("docker://{name}:nope");
        let (code, _, _, _) = run(
            &s,
            &[
                "verify-attestation",
                &missing,
                "--type",
                V1,
                "--key",
                &path(dir, "alice.pub"),
            ],
        )
        .await;
        assert_eq!(code, 2);
        let (code, _, _, err) = run(&s, &["verify-attestation", &img(1), "--type", V1]).await;
        assert_eq!(code, 2, "neither --key nor --team: {err}");
        let (code, _, _, err) = attest_provenance(&s, &img(1), &path(dir, "alice.pub"), &path(dir, "alice.p8")).await;
        assert_eq!(code, 2);
        assert!(err.contains("not JSON"), "{err}");
    }
}

/// Attestations others wrote (kept under tests/data/attestations, see its
/// PROVENANCE.md) are read: statement type, predicate type, subject, and
/// SLSA builder id and sources; provenance rules judge them. Their
/// signatures are keyless (Fulcio certificates) or by keys not published,
/// so they are refused as untrusted under any key we hold.
#[test]
fn attestations_written_by_others_are_read() {
    let data = |f: &str| std::fs::read(format!("{}/tests/data/attestations/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let envelope_of = |f: &str| -> Value {
        let bytes = data(f);
        match portcullis_sign::bundle_envelope(&bytes) {
            Some(e) => e,
            None => serde_json::from_slice(&bytes).unwrap(),
        }
    };
    let payload = |e: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(e["payload"].as_str().unwrap())
            .unwrap()
    };
    struct Sample {
        file: &'static str,
        signed: bool,
        statement_type: &'static str,
        predicate_type: &'static str,
        subject: &'static str,
        builder: &'static str,
        source: Option<&'static str>,
        rule: (&'static str, &'static str),
    }
    let samples = [
        Sample {
            file: "github-attest-build-provenance.sigstore.json",
            signed: true,
            statement_type: "https://in-toto.io/Statement/v1",
            predicate_type: V1,
            subject: "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25",
            builder: "https://github.com/actions/runner/github-hosted",
            source: Some("https://github.com/malancas/attest-demo"),
            rule: ("https://github.com/actions/runner/*", "https://github.com/malancas/*"),
        },
        Sample {
            file: "slsa-github-generator-v0.2.intoto.jsonl",
            signed: true,
            statement_type: "https://in-toto.io/Statement/v0.1",
            predicate_type: "https://slsa.dev/provenance/v0.2",
            subject: "sha256:2892146b063a94cb4a4318c0e98d38af12dcf2b1e29237486b58463b59607bbd",
            builder: "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.10.0",
            source: Some("git+https://github.com/slsa-framework/example-package@refs/heads/main"),
            rule: (
                "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/*@refs/tags/v*",
                "git+https://github.com/slsa-framework/*@refs/heads/*",
            ),
        },
        Sample {
            file: "tekton-chains-cosign-att.dsse.json",
            signed: true,
            statement_type: "https://in-toto.io/Statement/v0.1",
            predicate_type: "https://slsa.dev/provenance/v0.2",
            subject: "sha256:e14396b283abcbacddba403a923a7fdecf2c54537a1d6a1ee1076767bec742d1",
            builder: "https://tekton.dev/chains/v2",
            source: None,
            rule: ("https://tekton.dev/chains/*", ""),
        },
        Sample {
            file: "gitlab-runner-v15.1.0-artifacts-metadata.json",
            signed: false,
            statement_type: "https://in-toto.io/Statement/v0.1",
            predicate_type: "https://slsa.dev/provenance/v0.2",
            subject: "sha256:f5ae5ced234922eebe6461d32228ba8ab9c3d0c0f3983a3bef707e6e1a1ab52a",
            builder: "https://gitlab.com/ggeorgiev_gitlab/playground/-/runners/14811533",
            source: Some("https://gitlab.com/ggeorgiev_gitlab/playground"),
            rule: ("https://gitlab.com/**/-/runners/*", "https://gitlab.com/ggeorgiev_gitlab/*"),
        },
    ];
    let (ours, _) = portcullis_sign::SigningKey::generate().unwrap();
    for s in samples {
        let bytes = if s.signed {
            let e = envelope_of(s.file);
            assert_eq!(e["payloadType"], "application/vnd.in-toto+json", "{}", s.file);
            // Keyless or unpublished keys: never trusted under ours.
            assert_eq!(
                attestation::open_envelope(&e, std::slice::from_ref(&ours.public), false).err(),
                Some(Rejection::Untrusted),
                "{}",
                s.file
            );
            payload(&e)
        } else {
            data(s.file)
        };
        let statement = Statement::parse(&bytes).unwrap();
        assert_eq!(statement.value["_type"], s.statement_type, "{}", s.file);
        assert_eq!(statement.predicate_type, s.predicate_type, "{}", s.file);
        let subject: Digest = s.subject.parse().unwrap();
        assert!(statement.names(&subject), "{}", s.file);
        let p = provenance(&statement.predicate_type, statement.predicate()).unwrap();
        assert_eq!(p.builder_id.as_deref(), Some(s.builder), "{}", s.file);
        assert_eq!(p.source_uri.as_deref(), s.source, "{}", s.file);
        let (builder, source) = s.rule;
        let sources: Vec<String> = [source]
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        let rule = ProvenanceRule::new(&[builder.to_string()], &sources).unwrap();
        assert_eq!(rule.check(&statement), Ok(()), "{}", s.file);
        let strict = ProvenanceRule::new(&[builder.to_string()], &["git+https://git.acme.example/*".into()]).unwrap();
        assert!(
            strict.check(&statement).is_err(),
            "{}: another source is refused",
            s.file
        );
    }
}

/// A signed-only pull examines a bounded number of bundle referrers;
/// attestation bundles (which `attest` adds one of per run, so a nightly
/// scan attestation piles them up) are not signatures and never take a
/// signature's place in that window, nor in `verify`'s. Referrers are read
/// in digest order: forty attestations are made to sort before the one
/// signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_bundles_do_not_crowd_out_signatures() {
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        trusted_team(&s, &["alice", "dev"], &["alice"]).await;
        register_key(&s, dir, "alice").await;
        key_files(dir, "alice");
        let grant = json!({"account": "dev", "role": "read"});
        let (st, _) = common::call(&s, reqwest::Method::POST, "/api/v1/namespaces/acme/grants", grant).await;
        assert_eq!(st, 201);
        let key = portcullis_sign::SigningKey::from_pkcs8(&std::fs::read(dir.join("alice.der")).unwrap()).unwrap();
        let (image, body) = s.push_image("acme/app", "1", b"{\"app\":1}", &[b"app layer"]).await;
        let subject = ("application/vnd.oci.image.manifest.v1+json", &image, body.len() as u64);
        s.push_blob("acme/app", b"{}").await;
        // A referrer of `bundle` whose digest sorts as `wanted` says.
        let attach = |bundle: Vec<u8>, predicate_type: &'static str, wanted: fn(&Digest) -> bool| {
            let s = &s;
            async move {
                let b = s.push_blob("acme/app", &bundle).await;
                let m = (0..)
                    .map(|n| {
                        let created = format!("2026-12-07T00:00:{:02}.{n}Z", n % 60);
                        portcullis_sign::bundle_manifest(subject, (&b, bundle.len()), predicate_type, &created)
                    })
                    .find(|m| wanted(&Digest::sha256_of(m)))
                    .unwrap();
                let r = s.put_manifest("acme/app", Digest::sha256_of(&m).as_str(), m).await;
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
            }
        };
        let signature = portcullis_sign::sign_bundle(&key, &image).unwrap();
        attach(signature, portcullis_sign::COSIGN_SIGN_PREDICATE, |d| d.hex() >= "f").await;
        let name = format!("{}/acme/app", host(&s));
        for n in 0..40 {
            let statement = attestation::build_statement(&name, &image, V1, json!({"run": n}));
            let bundle = portcullis_sign::sign_statement_bundle(&key, &statement).unwrap();
            attach(bundle, V1, |d| d.hex() < "f").await;
        }
        let rule = json!({"pull_rule": {"require_signed_by": {"teams": ["ci/gitlab"]}}});
        let (st, v) = common::call(&s, reqwest::Method::PUT, "/api/v1/repositories/acme/app", rule).await;
        assert_eq!(st, 200, "{v}");
        let (st, text) = common::signing::reader_pull(&s, "dev", "acme/app", "1").await;
        assert_eq!(st, 200, "{label}: {text}");
        let img = format!("docker://{name}:1");
        let alice_pub = path(dir, "alice.pub");
        let (code, v, _, err) = run(&s, &["verify", &img, "--key", &alice_pub, "--format", "json"]).await;
        assert_eq!((code, v["unverified"].as_u64()), (0, Some(0)), "{label}: {v} {err}");
        let args = [
            "verify-attestation",
            &img,
            "--type",
            V1,
            "--key",
            &alice_pub,
            "--format",
            "json",
        ];
        let (code, v, _, err) = run(&s, &args).await;
        assert_eq!(
            (code, v["attestations"].as_array().map(Vec::len)),
            (0, Some(40)),
            "{label}: {err}"
        );
    }
}

/// Polls the scan of `digest` in acme/app until it is done; bounded.
async fn wait_scanned(s: &TestServer, digest: &Digest, after: Option<&Value>) -> Value {
    let path = format!("/api/v1/scans/{digest}?repository=acme/app");
    common::until(s, &path, |v| {
        assert_ne!(v["status"], "failed", "scan failed: {v}");
        v["status"] == "done" && after.is_none_or(|a| v["finished_at"] != a["finished_at"])
    })
    .await
}

/// The registry's published attestation keys.
async fn registry_keys(s: &TestServer) -> Vec<Value> {
    let v = common::json_of(s.anon.get(s.url("/api/v1/keys/registry"))).await;
    v["keys"].as_array().unwrap().clone()
}

/// The registry's own referrers of `image` in acme/app: (predicate type,
/// bundle layer digest), in the registry's listing order.
async fn registry_referrers(s: &TestServer, image: &Digest) -> Vec<(String, String)> {
    let index = common::json_of(s.http.get(s.url(&format!("/v2/acme/app/referrers/{image}")))).await;
    let mut out = Vec::new();
    for r in index["manifests"].as_array().unwrap() {
        let a = &r["annotations"];
        if a["dev.portcullis.attestation.by"] != "registry" {
            continue;
        }
        let m = manifest(s, "acme/app", r["digest"].as_str().unwrap()).await;
        out.push((
            a["dev.sigstore.bundle.predicateType"].as_str().unwrap().to_string(),
            m["layers"][0]["digest"].as_str().unwrap().to_string(),
        ));
    }
    out.sort();
    out
}

/// After each scan the registry attests it with two sigstore bundle
/// referrers of the image (no tag is made): a CycloneDX SBOM and a cosign
/// `vuln` record, signed by its own key, which anyone can fetch (`GET
/// /api/v1/keys/registry`, no credentials). They verify with
/// `verify-attestation` and with sigstore-js, and under no other key. After
/// a rotation new scans are signed by the new key while what the old one
/// signed still verifies with it; a rescan replaces the registry's own
/// statements and keeps everyone else's. Both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_attests_its_scans() {
    const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
    const CDX: &str = "https://cyclonedx.org/bom";
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        key_files(dir, "alice");
        std::fs::write(dir.join("provenance.json"), provenance_v1().to_string()).unwrap();
        let layer = |n: &str| common::tar_of(&[("srv/app/version", n.as_bytes())]);
        let (one, _) = s.push_image("acme/app", "1", b"{\"registry\":1}", &[&layer("1")]).await;
        let scan = wait_scanned(&s, &one, None).await;

        let keys = registry_keys(&s).await;
        assert_eq!(keys.len(), 1, "{label}: {keys:?}");
        assert_eq!(keys[0]["current"], true);
        std::fs::write(dir.join("registry1.pub"), keys[0]["pem"].as_str().unwrap()).unwrap();
        let img1 = format!("docker://{}/acme/app@{one}", host(&s));
        let verify = |image: String, kind: &'static str, key: String| {
            let s = &s;
            async move {
                run(
                    s,
                    &[
                        "verify-attestation",
                        &image,
                        "--type",
                        kind,
                        "--key",
                        &key,
                        "--format",
                        "json",
                    ],
                )
                .await
            }
        };
        let (code, v, _, err) = verify(img1.clone(), "vuln", path(dir, "registry1.pub")).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        assert_eq!(v["attestations"][0]["form"], "bundle");
        let predicate = &v["attestations"][0]["statement"]["predicate"];
        assert_eq!(
            predicate["scanner"]["result"]["summary"], scan["summary"],
            "{label}: {v}"
        );
        assert!(predicate["metadata"]["scanFinishedOn"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert_eq!(v["attestations"][0]["key_id"], keys[0]["id"]);
        let (code, v, _, err) = verify(img1.clone(), "cyclonedx", path(dir, "registry1.pub")).await;
        assert_eq!(code, 0, "{label}: {v} {err}");
        assert_eq!(v["attestations"][0]["statement"]["predicate"]["bomFormat"], "CycloneDX");
        let (code, _, _, _) = verify(img1.clone(), "vuln", path(dir, "alice.pub")).await;
        assert_eq!(code, 1, "{label}: another key");
        // No tag was made; an independent verifier agrees on the bundles.
        let tags = common::json_of(s.http.get(s.url("/v2/acme/app/tags/list"))).await;
        assert_eq!(tags["tags"], json!(["1"]), "{label}");
        let referrers = registry_referrers(&s, &one).await;
        let kinds: Vec<&str> = referrers.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(kinds, [VULN, CDX], "{label}");
        for (_, layer) in &referrers {
            let file = dir.join("bundle.json");
            std::fs::write(&file, blob(&s, "acme/app", layer).await).unwrap();
            let (ok, out) = sigstore_js_verifies(file.to_str().unwrap(), &path(dir, "registry1.pub"), &one);
            assert!(ok, "{label}: {out}");
            let (ok, _) = sigstore_js_verifies(file.to_str().unwrap(), &path(dir, "alice.pub"), &one);
            assert!(!ok, "{label}");
        }

        // Someone else's attestation stays through rescans.
        let (predicate, key) = (path(dir, "provenance.json"), path(dir, "alice.p8"));
        let how = ("slsaprovenance1", predicate.as_str(), key.as_str(), "bundle");
        let (code, _, _, err) = attest_cli(&s, &img1, how, &[]).await;
        assert_eq!(code, 0, "{label}: {err}");

        // Rotation: only an administrator; the new key signs from now on.
        let r = s.anon.post(s.url("/api/v1/keys/registry")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{label}");
        let r = s.http.post(s.url("/api/v1/keys/registry")).send().await.unwrap();
        assert_eq!(r.status(), 201, "{label}");
        let keys = registry_keys(&s).await;
        assert_eq!(keys.len(), 2, "{label}");
        assert_eq!(
            (keys[0]["current"].as_bool(), keys[1]["current"].as_bool()),
            (Some(false), Some(true))
        );
        std::fs::write(dir.join("registry2.pub"), keys[1]["pem"].as_str().unwrap()).unwrap();
        let (two, _) = s.push_image("acme/app", "2", b"{\"registry\":2}", &[&layer("2")]).await;
        wait_scanned(&s, &two, None).await;
        let img2 = format!("docker://{}/acme/app@{two}", host(&s));
        assert_eq!(
            verify(img2.clone(), "vuln", path(dir, "registry2.pub")).await.0,
            0,
            "{label}"
        );
        assert_eq!(verify(img2, "vuln", path(dir, "registry1.pub")).await.0, 1, "{label}");
        assert_eq!(
            verify(img1.clone(), "vuln", path(dir, "registry1.pub")).await.0,
            0,
            "{label}: the old key's attestation still verifies"
        );

        // A rescan: the registry's two statements are replaced (by the new
        // key's), alice's provenance stays.
        let r = s
            .http
            .post(s.url(&format!("/api/v1/scans/{one}?repository=acme/app")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{label}");
        wait_scanned(&s, &one, Some(&scan)).await;
        let mut after = Vec::new();
        for _ in 0..100 {
            after = registry_referrers(&s, &one).await;
            if after.len() == 2 && after != referrers {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(after.len(), 2, "{label}: replaced, not added: {after:?}");
        assert_eq!(
            verify(img1.clone(), "vuln", path(dir, "registry2.pub")).await.0,
            0,
            "{label}"
        );
        assert_eq!(
            verify(img1.clone(), "vuln", path(dir, "registry1.pub")).await.0,
            1,
            "{label}: replaced"
        );
        let (code, _, _, err) = run(
            &s,
            &[
                "verify-attestation",
                &img1,
                "--type",
                "slsaprovenance1",
                "--key",
                &path(dir, "alice.pub"),
            ],
        )
        .await;
        assert_eq!(code, 0, "{label}: {err}");
    }
}

/// A promotion is attested in its target repository: the policy, its rules
/// and the facts each used, the database generation, source and target, as
/// `schemas/promotion-v1.schema.json` describes (checked with Python's
/// `jsonschema`). Signed by the registry's key, or by the policy's
/// `sign_as` account's key when it has one. Both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotions_are_attested() {
    const PROMOTION: &str = "https://portcullis.dev/attestation/promotion/v1";
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/promotion-v1.schema.json");
    for backend in backends() {
        let s = TestServer::start(&backend).await;
        let label = s.label();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        let (st, v) = common::call(&s, reqwest::Method::POST, "/api/v1/orgs", json!({"name": "acme"})).await;
        assert_eq!(st, 201, "{label}: {v}");
        let layer = common::tar_of(&[("srv/app/version", b"1")]);
        let (image, _) = s.push_image("acme/build", "1", b"{\"promoted\":1}", &[&layer]).await;
        let keys = registry_keys(&s).await;
        std::fs::write(dir.join("registry.pub"), keys[0]["pem"].as_str().unwrap()).unwrap();
        let (st, v) = common::call(
            &s,
            reqwest::Method::POST,
            "/api/v1/namespaces/acme/service-accounts",
            json!({"name": "release"}),
        )
        .await;
        assert_eq!(st, 201, "{label}: {v}");
        let (st, key) = common::call(
            &s,
            reqwest::Method::POST,
            "/api/v1/accounts/acme+release/signing-key",
            Value::Null,
        )
        .await;
        assert_eq!(st, 201, "{label}: {key}");
        std::fs::write(dir.join("release.pub"), key["pem"].as_str().unwrap()).unwrap();
        let rules = json!([{"field": "tag", "operator": "eq", "values": ["1"]}]);
        for (target, sign_as, signer, other) in [
            ("acme/release", None, "registry.pub", "release.pub"),
            ("acme/signed", Some("acme+release"), "release.pub", "registry.pub"),
        ] {
            let mut policy = json!({"target": target, "tag_template": "%n", "rules": rules, "apply_existing": true});
            if let Some(a) = sign_as {
                policy["sign_as"] = a.into();
            }
            let (st, p) = common::call(
                &s,
                reqwest::Method::POST,
                "/api/v1/repositories/acme/build/policies",
                policy,
            )
            .await;
            assert_eq!(st, 201, "{label}: {p}");
            assert_eq!(p["evaluations"][0]["outcome"], "promoted", "{label}: {p}");
            let img = format!("docker://{}/{target}@{image}", host(&s));
            let verify = |key: &'static str| {
                let (s, img, key) = (&s, img.clone(), path(dir, key));
                async move {
                    run(
                        s,
                        &[
                            "verify-attestation",
                            &img,
                            "--type",
                            PROMOTION,
                            "--key",
                            &key,
                            "--format",
                            "json",
                        ],
                    )
                    .await
                }
            };
            let (code, v, _, err) = verify(signer).await;
            assert_eq!(code, 0, "{label} {target}: {v} {err}");
            let predicate = &v["attestations"][0]["statement"]["predicate"];
            assert_eq!(predicate["policy"]["id"], p["id"], "{label}");
            assert_eq!(predicate["source"]["tag"], "1");
            assert_eq!(predicate["target"]["repository"], target);
            assert_eq!(predicate["evaluation"]["images"][0]["rules"][0]["passed"], true);
            let file = dir.join("predicate.json");
            std::fs::write(&file, predicate.to_string()).unwrap();
            let check = "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])), format_checker=jsonschema.FormatChecker())";
            let out = std::process::Command::new("python3")
                .args(["-c", check, schema, file.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let (code, _, _, _) = verify(other).await;
            assert_eq!(code, 1, "{label} {target}: signed by the other key");
        }
    }
}
