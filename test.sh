#!/usr/bin/env bash
# Runs every Stele test suite: formatting, lints, Rust unit and integration tests, then the
# official WorkOS SDKs (Python, Node, Rust) and the dashboard in a real Chromium (e2e/),
# each against a fresh `stele serve`, every command shown in README.md and docs/
# (doc-tests/), and the benchmark harness's smoke run. The Rust integration tests and the
# SDK and browser suites run twice, on SQLite and on PostgreSQL (a fresh database per
# test or server, dropped afterwards), plus the two-replica tests, which need PostgreSQL.
# The two Rust passes run side by side; after them, the SQLite suites, the PostgreSQL
# suites, the documentation examples and the benchmark smoke run go side by side. Installs
# what the suites need on its own (Python venv, npm packages, Debian's chromium and jq
# packages when run as root).
# Usage: ./test.sh
#
# PostgreSQL: STELE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# must name a server where that user may create databases. When it is the local default
# and not answering, the local cluster is started with pg_ctlcluster; if it still cannot
# be reached, the run fails here rather than skipping anything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
root=$(pwd)

# Each step shows the minutes and seconds since the run began, so a slow stage shows in
# CI's log. The suites that run side by side print theirs too (subshells keep counting).
step() { printf '\n\033[1m==> [%dm%02ds] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

for tool in cargo node npm python3 curl psql pg_isready; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done

# The integration tests run the examples of docs/batch-ingest.md with node and with
# python3's `requests`.
# `python3` may be a pyenv or other non-Debian interpreter, which Debian's package would
# not reach, so pip comes first; Debian's own python3 refuses pip (PEP 668) and gets the
# package instead.
if ! python3 -c 'import requests' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'requests>=2.31,<3' >/dev/null 2>&1 ||
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-requests >/dev/null
    fi
  python3 -c 'import requests' >/dev/null 2>&1 ||
    die "python3's 'requests' is required (python3 -m pip install requests, or apt-get install python3-requests)"
fi

postgres_url="${STELE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
ensure_postgres() {
  if psql "$postgres_url" -Atqc 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
    local version
    for version in $(ls /etc/postgresql 2>/dev/null); do
      echo "starting PostgreSQL $version (main cluster)"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
  fi
  psql "$postgres_url" -Atqc 'SELECT 1' >/dev/null 2>&1 ||
    die "PostgreSQL is not reachable at $postgres_url ($(psql "$postgres_url" -Atqc 'SELECT 1' 2>&1 | head -n 1)); the PostgreSQL half of the suite cannot run. Start it (pg_ctlcluster <version> main start) or set STELE_TEST_POSTGRES_URL."
}
step "PostgreSQL at $postgres_url"
ensure_postgres
psql "$postgres_url" -Atc 'SELECT version()'

# The TLS tests (sslmode=require and verify-full against this server) need it to serve a
# certificate of a test CA; the script is idempotent and only reloads the configuration.
if [[ "$postgres_url" == "postgres://postgres@127.0.0.1:5432/postgres" ]]; then
  step "PostgreSQL TLS with a test CA (reload, no restart)"
  scripts/postgres-test-tls.sh "$postgres_url"
else
  echo "STELE_TEST_POSTGRES_URL is not the local server: set it up for TLS with scripts/postgres-test-tls.sh where it runs, or set STELE_TEST_POSTGRES_TLS_DIR (the TLS tests fail otherwise)"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (whole workspace, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "object store emulators for the log stream tests (moto's S3 server, gcp-storage-emulator)"
scripts/emulator-venv.sh
emulator_venv="${STELE_EMULATOR_VENV:-$PWD/target/emulator-venv}"
export STELE_TEST_MOTO_SERVER="$emulator_venv/bin/moto_server"
export STELE_TEST_GCS_EMULATOR_PYTHON="$emulator_venv/bin/python"

# STELE_TEST_BACKEND picks the integration tests' database. The two-replica tests
# (replicas::) and the PostgreSQL store's own tests always use PostgreSQL, so they run in
# both passes.
export STELE_TEST_POSTGRES_URL="$postgres_url"
if cargo nextest --version >/dev/null 2>&1; then
  rust_tests=(cargo nextest run --locked)
else
  rust_tests=(cargo test --locked)
fi

# Every build comes first, one after another (two builds at once would only take turns
# on cargo's lock). The SDK and browser suites use the binary built here;
# STELE_BIN lets e2e check downloaded proof bundles with `stele verify-export`.
step "build the Rust tests, the stele binary and the Rust SDK suite"
"${rust_tests[@]}" --no-run
# The PostgreSQL pass selects one test binary; built here too, so it never links anything
# while the SQLite pass runs.
"${rust_tests[@]}" --no-run -p stele-server --test integration
cargo build --locked --bin stele
cargo test --locked -p stele-sdk-tests-rust --tests --no-run
stele="$root/target/debug/stele"
export STELE_BIN="$stele"

# Runs the named functions at once, each in a subshell of its own with its output kept,
# then prints each one's output whole, one after another, when all have ended; fails
# naming those that failed.
side_by_side() {
  local logs index name pids=() failed=()
  logs=$(mktemp -d)
  for name in "$@"; do
    ( "$name" ) >"$logs/$name.log" 2>&1 &
    pids+=($!)
  done
  for index in "${!pids[@]}"; do
    wait "${pids[$index]}" || failed+=("${*:index+1:1}")
  done
  for name in "$@"; do
    printf '\n\033[1m==> output of %s\033[0m\n' "$name"
    cat "$logs/$name.log"
  done
  rm -rf "$logs"
  if (( ${#failed[@]} )); then
    die "failed: ${failed[*]}"
  fi
}

rust_tests_sqlite() {
  step "Rust unit, integration and property tests (SQLite)"
  STELE_TEST_BACKEND=sqlite "${rust_tests[@]}" --no-fail-fast
}
rust_tests_postgres() {
  step "Rust integration tests on PostgreSQL, and the two-replica tests"
  STELE_TEST_BACKEND=postgres "${rust_tests[@]}" --no-fail-fast -p stele-server --test integration
}
# Installs what the suites below need before they run side by side, so that no two of
# them install into one directory at once.
suite_dependencies() {
  step "install the SDK, browser and documentation suites' dependencies"
  sdk-tests/python/run.sh --install-only
  sdk-tests/node/run.sh --install-only
  e2e/run.sh --install-only
  ci/schemathesis.sh --install-only
  if ! command -v jq >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
    else
      die "'jq' is required by the documentation examples (sudo apt-get install jq)"
    fi
  fi
}
# The two Rust passes wait on servers, sleeps and fsyncs as much as on the CPU, so they
# run side by side, beside the installs of the suites below (mostly downloads).
side_by_side rust_tests_sqlite rust_tests_postgres suite_dependencies

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_pid=""
server_dir=""
server_database=""
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  [[ -n "$server_dir" ]] && rm -rf "$server_dir"
  server_dir=""
  if [[ -n "$server_database" ]]; then
    psql "$postgres_url" -q -c "DROP DATABASE IF EXISTS $server_database WITH (FORCE)" >/dev/null
    server_database=""
  fi
}
trap stop_server EXIT

# `postgres_url` with its database name replaced by $1.
postgres_url_for() {
  local url="${postgres_url%%\?*}" query=""
  [[ "$postgres_url" == *\?* ]] && query="?${postgres_url#*\?}"
  local scheme="${url%%://*}" rest="${url#*://}"
  echo "$scheme://${rest%%/*}/$1$query"
}

# Starts a fresh server on its own database (start_server sqlite|postgres [serve flags...])
# and exports what the suites read.
start_server() {
  server_dir=$(mktemp -d)
  local port database_url
  case "$1" in
    sqlite) database_url="sqlite://$server_dir/stele.db" ;;
    postgres)
      server_database="stele_suite_$$_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
      psql "$postgres_url" -q -c "CREATE DATABASE $server_database" >/dev/null
      database_url=$(postgres_url_for "$server_database")
      ;;
    *) die "start_server: unknown backend '$1'" ;;
  esac
  port=$(free_port)
  export STELE_API_KEY="sk_test_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  export STELE_ADMIN_PASSWORD="admin-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
  export STELE_HOST=127.0.0.1 STELE_PORT="$port" STELE_BASE_URL="http://127.0.0.1:$port"
  STELE_LISTEN="127.0.0.1:$port" STELE_DATABASE_URL="$database_url" \
    STELE_SIGNING_KEY_FILE="$server_dir/signing-key.pem" "$stele" serve "${@:2}" >"$server_dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 150); do
    if curl -sf "$STELE_BASE_URL/healthz" >/dev/null; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  cat "$server_dir/server.log" >&2
  die "stele did not become healthy on $STELE_BASE_URL"
}


# Runs one suite script against its own fresh server: run_suite NAME SCRIPT BACKEND
# [serve flags...]. Prints the failed suite's name on failure.
run_suite() {
  local status=0
  start_server "${@:3}"
  if ! "$2"; then
    status=1
    echo "--- server log ($1, $3) ---" >&2
    tail -n 50 "$server_dir/server.log" >&2
  fi
  stop_server
  return "$status"
}

# Every SDK suite and the browser suite on one backend, one after another; each suite's
# failure is recorded and the rest still run.
backend_suites() {
  trap stop_server EXIT
  local backend=$1 failures=()
  for suite in python node rust; do
    step "SDK compatibility: $suite ($backend)"
    run_suite "$suite" "sdk-tests/$suite/run.sh" "$backend" || failures+=("$suite ($backend)")
  done
  step "dashboard in Chromium (e2e, $backend)"
  # The log stream controls deliver to a receiver the browser test starts on 127.0.0.1
  # (only this suite: schemathesis must not get private destinations accepted).
  run_suite e2e e2e/run.sh "$backend" --allow-private-stream-destinations ||
    failures+=("e2e ($backend)")
  step "schemathesis against /openapi.json ($backend)"
  run_suite schemathesis ci/schemathesis.sh "$backend" || failures+=("schemathesis ($backend)")
  if (( ${#failures[@]} )); then
    echo "failed: ${failures[*]}" >&2
    return 1
  fi
}

# The suites below wait on servers, browsers and the network far more than on the CPU, so
# the two backends' suites, the documentation examples and the benchmark smoke run go side
# by side. Each one's output is kept and printed whole, one after another, when all end.
sqlite_suites() { backend_suites sqlite; }
postgres_suites() { backend_suites postgres; }
documentation_examples() {
  step "every command in README.md and docs/"
  python3 doc-tests/run.py
}
bench_smoke() {
  step "benchmark harness smoke runs (prove bench/run.sh and bench/streams.sh work; assert no speed)"
  bench/run.sh --smoke && bench/streams.sh --smoke
}
side_by_side sqlite_suites postgres_suites documentation_examples bench_smoke
step "all suites passed"
