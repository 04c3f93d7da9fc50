#!/usr/bin/env bash
# Log stream delivery benchmark:
#
#   bench/streams.sh [--smoke] [BINARY]
#
# 1. Catch-up: one organization with EVENTS stored events gets a GenericHttps stream (to
#    a local receiver, bench/streams.py, which checks that the batches come in order with
#    no gap), then an S3 stream (a local moto server); each is timed from its creation to
#    the moment everything is delivered. This is the speed of a stream after an outage.
# 2. While ingest runs: bench/compare.sh with BINARY twice, the second server giving each
#    of its 100 organizations a stream (STREAM=GenericHttps, then STREAM=S3), so the cost
#    of streaming to ingest and the delivery rate under load come from the same run.
#
# BINARY defaults to target/release/stele (built if missing). --smoke runs tiny sizes with
# the debug build to prove the harness works (test.sh runs it after bench/run.sh --smoke) and asserts
# no speed. Prints its results; BENCHMARKS.md quotes them by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=full
if [[ ${1:-} == --smoke ]]; then mode=smoke; shift; fi
if [[ $mode == full ]]; then
  events=100000 rounds=3 duration=15s profile=release
else
  events=2000 rounds=1 duration=2s profile=debug
fi
stele=${1:-}
if [[ -z $stele ]]; then
  # Does nothing when the binary is current.
  cargo build --locked $([[ $profile == release ]] && echo --release) -p stele-server --bin stele >&2
  stele=target/$profile/stele
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# shellcheck source=bench/stream-destination.sh
source bench/stream-destination.sh
key="sk_streams_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
say() { printf '\033[1m[streams]\033[0m %s\n' "$*" >&2; }
# shellcheck source=bench/packages.sh
source bench/packages.sh
install_missing_packages wrk

# --- 1: catch-up --------------------------------------------------------------------------
port=$(free_port)
url="http://127.0.0.1:$port"
STELE_LISTEN="127.0.0.1:$port" STELE_DATABASE_URL="sqlite://$work/catch-up.db" STELE_API_KEY=$key \
  STELE_ADMIN_PASSWORD=streams-admin-password STELE_RATE_LIMIT_PER_MINUTE=0 STELE_LOG=warn \
  STELE_ALLOW_PRIVATE_STREAM_DESTINATIONS=true \
  STELE_STREAM_SECRETS_KEY="$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')" \
  "$stele" serve >"$work/stele.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.05; done
schema='{"targets":[{"type":"team"},{"type":"document"}],"actor":{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}},"metadata":{"type":"object","properties":{"request_id":{"type":"string"}}}}'
for action in user.signed_in user.signed_out document.viewed document.shared; do
  curl -sf -X POST "$url/audit_logs/actions/$action/schemas" -H "Authorization: Bearer $key" -d "$schema" >/dev/null
done
organization=$(curl -sf -X POST "$url/organizations" -H "Authorization: Bearer $key" -d '{"name":"Catch-up"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
say "storing $events events"
python3 bench/streams.py seed "$url" "$key" "$organization" "$events"
echo "$organization" >"$work/catch-up.orgs"
for type in GenericHttps S3; do
  start_stream_destination "$type" "$work"
  started=$(date +%s%3N)
  python3 bench/streams.py create "$url" "$key" "$work/catch-up.orgs" "$stream_settings"
  python3 bench/streams.py drain "$url" "$key" 1200 >/dev/null
  ms=$(( $(date +%s%3N) - started ))
  python3 -c 'import sys; e, ms = int(sys.argv[2]), int(sys.argv[3]); print(f"catch-up {sys.argv[1]}: {e:,} events delivered in {ms / 1000:.1f} s from the stream'"'"'s creation, {e / ms * 1000:,.0f} events/s")' "$type" "$events" "$ms"
  if [[ $type == GenericHttps ]]; then
    stats=$(curl -sf "$destination_url/stats")
    python3 - "$stats" "$events" <<'PY'
import json, sys
stats, events = json.loads(sys.argv[1]), int(sys.argv[2])
print(f"  receiver: {stats['requests']} requests, {stats['events']:,} events ({stats['duplicate_events']} duplicates), {stats['bytes'] / stats['requests'] / 1e6:.2f} MB per request")
if stats["gaps"] or stats["delivered_through"] != events:
    sys.exit(f"the receiver saw {stats['gaps']} gaps and events up to {stats['delivered_through']} of {events}")
PY
  fi
done

# --- 2: while ingest runs -----------------------------------------------------------------
for type in GenericHttps S3; do
  say "ingest without and with a $type stream per organization"
  STREAM=$type DURATION=$duration bench/compare.sh "$stele" "$stele" "$rounds"
done
