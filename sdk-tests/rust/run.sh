#!/usr/bin/env bash
# Runs the official `workos` Rust crate (=3.5.0) compatibility tests against a running Stele.
# The caller (the repo's top-level test script) starts the server and sets:
#   STELE_BASE_URL  e.g. http://127.0.0.1:8080
#   STELE_API_KEY   an API key the server accepts
# Extra arguments are passed to the test binary (e.g. ./run.sh idempotency -- --nocapture).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

missing=()
[[ -n "${STELE_BASE_URL:-}" ]] || missing+=(STELE_BASE_URL)
[[ -n "${STELE_API_KEY:-}" ]] || missing+=(STELE_API_KEY)
if (( ${#missing[@]} > 0 )); then
  echo "sdk-tests/rust: missing environment variable(s): ${missing[*]}" >&2
  echo "  set STELE_BASE_URL (e.g. http://127.0.0.1:8080) and STELE_API_KEY to point at a running Stele server" >&2
  exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "sdk-tests/rust: cargo is required" >&2
  exit 2
fi

exec cargo test -p stele-sdk-tests-rust --tests "$@"
