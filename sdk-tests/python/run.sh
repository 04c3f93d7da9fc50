#!/usr/bin/env bash
# Runs the WorkOS Python SDK (workos 10.x) compatibility tests against a running Stele.
# The caller starts the server and sets:
#   STELE_BASE_URL  e.g. http://127.0.0.1:8080
#   STELE_API_KEY   an API key the server accepts
#   STELE_ADMIN_PASSWORD  the dashboard password of `admin` (test_dashboard_snippets.py
#                   signs in with it)
# Optional: STELE_SDK_MAX_RETRIES (SDK retries on 429/5xx/network errors; default: SDK's 3).
# Extra arguments are passed to pytest (e.g. ./run.sh -k idempotency).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# The virtualenv with the SDK; `./run.sh --install-only` prepares it and exits.
install() {
  stamp=.venv/.requirements.stamp
  if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
    rm -f "$stamp"
  fi
  if [[ ! -f "$stamp" || requirements.txt -nt "$stamp" ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
    touch "$stamp"
  fi
}
if [[ "${1:-}" == "--install-only" ]]; then install; exit 0; fi

missing=()
[[ -n "${STELE_BASE_URL:-}" ]] || missing+=(STELE_BASE_URL)
[[ -n "${STELE_API_KEY:-}" ]] || missing+=(STELE_API_KEY)
if (( ${#missing[@]} )); then
  echo "sdk-tests/python: missing environment variable(s): ${missing[*]}" >&2
  echo "  set STELE_BASE_URL (e.g. http://127.0.0.1:8080) and STELE_API_KEY to a running Stele server;" >&2
  echo "  this script does not start the server." >&2
  exit 2
fi

install
exec .venv/bin/python -m pytest -q "$@"
