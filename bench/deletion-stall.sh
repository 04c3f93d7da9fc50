#!/usr/bin/env bash
# What deleting a large organization costs everyone else:
#
#   bench/deletion-stall.sh BINARY [BINARY ...]
#
# Seeds one organization with EVENTS (default 1,000,000) events once, then for each BINARY,
# on a fresh copy of that database: a server, eight threads appending to a second
# organization (bench/deletion_stall.py), and after 3 s a DELETE of the seeded one. Prints
# how long the deletion took and the appends' latencies before and during it. Run by hand;
# bench/NOTES.md quotes the figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 ]] || { echo "usage: bench/deletion-stall.sh BINARY [BINARY ...]" >&2; exit 2; }
events=${EVENTS:-1000000}
# The same package set as bench/run.sh builds, so its artifacts are reused.
cargo build --locked --release -p stele-server -p stele-bench --bins >&2
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
target/release/stele-seed --database "$work/seed.db" --organizations 1 \
  --events-per-organization "$events" >"$work/seed.orgs"
victim=$(head -1 "$work/seed.orgs")
key="sk_stall_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
for binary in "$@"; do
  rm -f "$work"/run.db*
  # Each file with its WAL (what the seeder committed may not be checkpointed yet), not
  # its shared-memory index, which the server rebuilds.
  for suffix in "" -wal -search -search-wal; do
    if [[ -e $work/seed.db$suffix ]]; then cp "$work/seed.db$suffix" "$work/run.db$suffix"; fi
  done
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  STELE_LISTEN="127.0.0.1:$port" STELE_DATABASE_URL="sqlite://$work/run.db" STELE_API_KEY=$key \
    STELE_ADMIN_PASSWORD=stall-admin-password STELE_RATE_LIMIT_PER_MINUTE=0 STELE_LOG=warn \
    "$binary" serve >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
  echo "== $binary"
  python3 bench/deletion_stall.py "http://127.0.0.1:$port" "$key" "$victim"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
