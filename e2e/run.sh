#!/usr/bin/env bash
# Browser tests: drives the dashboard of an already running Stele server in a real,
# headless Chromium (Debian's package, driven by playwright-core). The caller (the repo's
# top-level test script) starts a fresh server and sets STELE_BASE_URL, STELE_API_KEY and
# STELE_ADMIN_PASSWORD. The server must run with --allow-private-stream-destinations: the
# log stream test delivers to a receiver it starts on 127.0.0.1. Screenshots of every page
# land in e2e/screenshots/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# What the suite needs installed; `./run.sh --install-only` installs it and exits.
install() {
  # playwright-core brings no browser of its own: it drives the system's Chromium.
  export STELE_CHROMIUM="${STELE_CHROMIUM:-/usr/bin/chromium}"
  if [[ ! -x "$STELE_CHROMIUM" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "e2e: installing Debian's chromium package"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq chromium >/dev/null
    else
      echo "e2e: $STELE_CHROMIUM is missing; install it with: sudo apt-get install chromium" >&2
      exit 2
    fi
  fi

  if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund
    touch node_modules
  fi
}
if [[ "${1:-}" == "--install-only" ]]; then install; exit 0; fi

missing=()
for var in STELE_BASE_URL STELE_API_KEY STELE_ADMIN_PASSWORD; do
  if [[ -z "${!var:-}" ]]; then missing+=("$var"); fi
done
if (( ${#missing[@]} > 0 )); then
  echo "e2e: missing environment variable(s): ${missing[*]}" >&2
  echo "  point STELE_BASE_URL at a running Stele server whose admin password and API key these are" >&2
  exit 2
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e: node and npm are required (Node >= 20)" >&2
  exit 2
fi

install
mkdir -p screenshots
exec node --test --test-concurrency=1 ./*.test.mjs
