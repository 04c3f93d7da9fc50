#!/usr/bin/env bash
# Runs every Stele test suite: formatting, lints, Rust unit and integration tests, then the
# official WorkOS SDKs (Python, Node, Rust) and the dashboard in a real Chromium (e2e/),
# each against a fresh `stele serve`. Installs what the suites need on its own (Python
# venv, npm packages, Debian's chromium package when run as root). Usage: ./test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$(pwd)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

for tool in cargo node npm python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (whole workspace, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust unit, integration and property tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

step "build the stele binary for the SDK and browser suites"
cargo build --locked --bin stele
stele="$root/target/debug/stele"
export STELE_BIN="$stele"  # e2e checks downloaded proof bundles with `stele verify-export`

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_pid=""
server_dir=""
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  [[ -n "$server_dir" ]] && rm -rf "$server_dir"
  server_dir=""
}
trap stop_server EXIT

# Starts a fresh server on its own SQLite file and exports what the suites read.
start_server() {
  server_dir=$(mktemp -d)
  local port
  port=$(free_port)
  export STELE_API_KEY="sk_test_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  export STELE_ADMIN_PASSWORD="admin-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
  export STELE_HOST=127.0.0.1 STELE_PORT="$port" STELE_BASE_URL="http://127.0.0.1:$port"
  STELE_LISTEN="127.0.0.1:$port" STELE_DATABASE_URL="sqlite://$server_dir/stele.db" \
    "$stele" serve >"$server_dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 150); do
    if curl -sf "$STELE_BASE_URL/healthz" >/dev/null; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$server_dir/server.log" >&2
  die "stele did not become healthy on $STELE_BASE_URL"
}

failed=()
# Runs one suite script against its own fresh server: run_suite NAME SCRIPT.
run_suite() {
  start_server
  if ! "$2"; then
    failed+=("$1")
    echo "--- server log ($1) ---" >&2
    tail -n 50 "$server_dir/server.log" >&2
  fi
  stop_server
}
for suite in python node rust; do
  step "SDK compatibility: $suite"
  run_suite "$suite" "sdk-tests/$suite/run.sh"
done
step "dashboard in Chromium (e2e)"
run_suite e2e e2e/run.sh

if (( ${#failed[@]} )); then
  die "suites failed: ${failed[*]}"
fi

step "benchmark harness smoke run (proves bench/run.sh works; asserts no speed)"
bench/run.sh --smoke
step "all suites passed"
