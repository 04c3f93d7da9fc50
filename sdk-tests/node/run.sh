#!/usr/bin/env bash
# Node SDK compatibility suite: runs the official @workos-inc/node SDK against an
# already running Stele server. The caller (the repo's top-level test script)
# starts a fresh server and sets STELE_HOST, STELE_PORT and STELE_API_KEY, and
# STELE_ADMIN_PASSWORD, with which snippets.test.mjs signs in to the dashboard.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# What the suite needs installed; `./run.sh --install-only` installs it and exits.
install() {
  if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
    npm ci --no-audit --no-fund
    touch node_modules
  fi
}
if [[ "${1:-}" == "--install-only" ]]; then install; exit 0; fi

missing=()
for var in STELE_HOST STELE_PORT STELE_API_KEY; do
  if [[ -z "${!var:-}" ]]; then missing+=("$var"); fi
done
if (( ${#missing[@]} > 0 )); then
  echo "sdk-tests/node: missing environment variable(s): ${missing[*]}" >&2
  echo "  set STELE_HOST (e.g. 127.0.0.1), STELE_PORT and STELE_API_KEY to point at a running Stele server" >&2
  exit 2
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "sdk-tests/node: node and npm are required (Node >= 20)" >&2
  exit 2
fi

install
exec node --test ./*.test.mjs
