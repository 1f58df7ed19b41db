//! `examples/supply-chain/run.sh` as CI runs it (issue 23): the seed's
//! whole chain with no person in it — a git commit, a webhook that triggers
//! CI, a buildah build pushed under its build number and attested with SLSA
//! provenance, a scan, a promotion that demands that provenance, a
//! server-side signature, an admission review that allows the release, a
//! person's build that is neither promoted nor admitted, and an intact
//! audit trail whose chain has only machines in it. The script checks each
//! step itself and exits non-zero at the first that fails; this test runs
//! it on SQLite and PostgreSQL and checks that it reached its end.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{backends, database_args, have_tool, Backend};

/// How long one run of the script may take (two buildah builds, three
/// scans, a promotion and a signature; about 30 s on a quiet machine).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(420);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supply_chain_example_runs_with_no_person_in_it() {
    for tool in ["buildah", "git", "curl", "jq", "python3", "openssl", "timeout"] {
        if !have_tool(tool) {
            return;
        }
    }
    for backend in backends() {
        run_example(&backend).await;
    }
}

async fn run_example(backend: &Backend) {
    let label = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let output_file = dir.path().join("output.txt");
    let mut command = common::isolated_bash(dir.path());
    command
        .arg(checkout.join("examples/supply-chain/run.sh"))
        .current_dir(dir.path());
    if let Some(url) = database_args(backend, dir.path()).await.get(1) {
        command.env("PORTCULLIS_DATABASE", url);
    }
    let mut child = command.spawn().unwrap();
    let status = common::wait_for_group(&mut child, Instant::now() + SCRIPT_DEADLINE).await;
    let output = std::fs::read_to_string(&output_file).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("[{label}] the example failed ({s}):\n{output}"),
        None => panic!("[{label}] the example did not finish within {SCRIPT_DEADLINE:?}:\n{output}"),
    }
    for want in [
        "ALLOWED 127.0.0.1:",
        "\"allowed\":false",
        "the chain ran with no person in it",
    ] {
        assert!(
            output.contains(want),
            "[{label}] the example's output has no {want:?}:\n{output}"
        );
    }
}
