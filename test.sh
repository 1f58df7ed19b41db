#!/usr/bin/env bash
# Runs every check and test Portcullis has, installing what the tests need.
# Under CI=true a missing tool or database is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")"

ci=${CI:-false}
need_apt=()
for tool in skopeo umoci jq podman buildah runc newuidmap fuse-overlayfs busybox docker-registry wrk openssl curl pg_isready rpmbuild chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing test tools (missing: ${need_apt[*]})"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      skopeo umoci podman buildah runc uidmap containers-storage fuse-overlayfs slirp4netns \
      busybox-static docker-registry wrk openssl curl jq postgresql-client rpm chromium chromium-driver >/dev/null
  elif [ "$ci" = true ]; then
    echo "test tools missing and not root: ${need_apt[*]}" >&2; exit 1
  fi
fi
if ! python3 -c 'import oras.client' 2>/dev/null; then
  echo "== installing oras (PyPI)"
  python3 -m pip install -q oras || { [ "$ci" = true ] && exit 1; }
fi
# Python's `cryptography` checks the DSSE envelopes of attestations (tests/verify_dsse.py).
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "== installing cryptography (PyPI)"
  python3 -m pip install -q cryptography || { [ "$ci" = true ] && exit 1; }
fi
# The SBOM projects' own validators check Portcullis's SPDX and CycloneDX output.
if ! python3 -c 'import cyclonedx.validation.json, spdx_tools, lib4sbom, jsonschema' 2>/dev/null; then
  echo "== installing SBOM validators (PyPI)"
  python3 -m pip install -q 'cyclonedx-python-lib[json-validation]' spdx-tools lib4sbom jsonschema || { [ "$ci" = true ] && exit 1; }
fi
# openapi-spec-validator checks the management API's OpenAPI document.
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "== installing openapi-spec-validator (PyPI)"
  python3 -m pip install -q openapi-spec-validator || { [ "$ci" = true ] && exit 1; }
fi

# Independent signature verifiers: sigstore-js (npm) for bundles; the
# `sigstore` crate (a dev-dependency) builds against the system OpenSSL.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  elif [ "$ci" = true ]; then
    echo "node and npm are missing and not root" >&2; exit 1
  fi
fi
if ! pkg-config --exists openssl 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev pkg-config >/dev/null
  elif [ "$ci" = true ]; then
    echo "OpenSSL headers (libssl-dev) are missing and not root" >&2; exit 1
  fi
fi
# playwright-core drives Debian's Chromium in the web UI's browser tests
# (its own browser download cannot work here).
if [ ! -d tests/node/node_modules/@sigstore/verify ] || [ ! -d tests/node/node_modules/playwright-core ]; then
  echo "== installing sigstore-js and playwright-core (npm)"
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error) || { [ "$ci" = true ] && exit 1; }
fi

export PORTCULLIS_TEST_POSTGRES=${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
if ! (command -v pg_isready >/dev/null && pg_isready -q -d "$PORTCULLIS_TEST_POSTGRES"); then
  if [ "$ci" = true ]; then echo "PostgreSQL is not reachable at $PORTCULLIS_TEST_POSTGRES" >&2; exit 1; fi
  echo "PostgreSQL not reachable: PostgreSQL halves of the tests are skipped" >&2
  unset PORTCULLIS_TEST_POSTGRES
fi
# Real-client tests fail rather than skip when their tool is missing.
export PORTCULLIS_REQUIRE_CLIENTS=1

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy -j2 --workspace --all-targets -- -D warnings
echo "== tests"
cargo nextest run -j2 --workspace --no-fail-fast --build-jobs 2 "$@"
