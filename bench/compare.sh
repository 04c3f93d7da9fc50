#!/usr/bin/env bash
# Compares single-event ingest of two stele binaries in one run, alternating between them
# so that drift in a shared machine's load hits both alike. Organizations and schemas are
# created through the HTTP API, so any two versions can be compared.
#
#   bench/compare.sh BEFORE_BINARY AFTER_BINARY [ROUNDS]
#
# Prints one line per round and binary, then the medians. Environment:
#   DURATION=15s        length of each round
#   LOAD=batch          batch ingest instead (bench/batch.lua, batches of BATCH_SIZE,
#                       default 1000, over 8 connections); needs binaries that have
#                       POST /audit_logs/events/batch
#   POSTGRES_URL=postgres://user@host:port/db
#                       runs both servers on PostgreSQL, each on a fresh database created
#                       through that URL (dropped afterwards), instead of SQLite
#   NGINX=1             adds an nginx round (one worker, `return 201`, the same load) to
#                       every round, so both binaries' share of the HTTP ceiling comes from
#                       the same run
#   STREAM=GenericHttps or STREAM=S3
#                       gives every organization of the AFTER server a log stream (to a
#                       local receiver, bench/streams.py, or a local moto S3 server), so
#                       the same binary twice measures what streaming costs ingest. After
#                       each of its rounds the undelivered events are counted and the time
#                       the streams take to catch up is measured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
before=$1 after=$2 rounds=${3:-3}
duration=${DURATION:-15s}
load=${LOAD:-single}
batch_size=${BATCH_SIZE:-1000}
postgres_url=${POSTGRES_URL:-}
stream=${STREAM:-}
work=$(mktemp -d)
pids=()
databases=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  for database in "${databases[@]}"; do
    psql "$postgres_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
key="sk_compare_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
stream_secrets_key=$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')

# start NAME BINARY: a fresh server with 100 organizations and the benchmark schemas; sets
# `port` (not printed: a command substitution would lose the server's pid for cleanup).
start() {
  port=$(free_port)
  local url="sqlite://$work/$1.db"
  if [[ -n $postgres_url ]]; then
    local database="stele_compare_$$_$1"
    psql "$postgres_url" -qc "CREATE DATABASE $database" >/dev/null
    databases+=("$database")
    url="${postgres_url%/*}/$database"
  fi
  # Both servers get the settings streams need; only AFTER's organizations get streams.
  STELE_LISTEN="127.0.0.1:$port" STELE_DATABASE_URL="$url" STELE_API_KEY=$key \
    STELE_ADMIN_PASSWORD=compare-admin-password STELE_RATE_LIMIT_PER_MINUTE=0 STELE_LOG=warn \
    STELE_ALLOW_PRIVATE_STREAM_DESTINATIONS=true STELE_STREAM_SECRETS_KEY="$stream_secrets_key" \
    "$2" serve >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
  local schema='{"targets":[{"type":"team"},{"type":"document"}],"actor":{"metadata":{"type":"object","properties":{"role":{"type":"string"}}}},"metadata":{"type":"object","properties":{"request_id":{"type":"string"}}}}'
  for action in user.signed_in user.signed_out document.viewed document.shared; do
    curl -sf -X POST "http://127.0.0.1:$port/audit_logs/actions/$action/schemas" -H "Authorization: Bearer $key" -d "$schema" >/dev/null
  done
  for i in $(seq 1 100); do
    curl -sf -X POST "http://127.0.0.1:$port/organizations" -H "Authorization: Bearer $key" -d "{\"name\":\"Org $i\"}" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
  done >"$work/$1.orgs"
}

start before "$before"
before_port=$port
start after "$after"
after_port=$port
if [[ -n $stream ]]; then
  # shellcheck source=bench/stream-destination.sh
  source bench/stream-destination.sh
  start_stream_destination "$stream" "$work"
  python3 bench/streams.py create "http://127.0.0.1:$after_port" "$key" "$work/after.orgs" "$stream_settings"
fi
names=(before after)
if [[ ${NGINX:-} == 1 ]]; then
  # shellcheck source=bench/nginx-ceiling.sh
  source bench/nginx-ceiling.sh
  nginx_port=$(free_port)
  start_nginx_ceiling "$work/nginx" "$nginx_port"
  pids+=("$nginx_pid")
  cp "$work/before.orgs" "$work/nginx.orgs"
  names+=(nginx)
fi
results="$work/results"
for round in $(seq 1 "$rounds"); do
  for name in "${names[@]}"; do
    port=${name}_port
    if [[ -n $stream && $name == after ]]; then
      python3 bench/streams.py watch "http://127.0.0.1:$after_port" "$key" >"$work/lag.txt" &
      watcher=$!
    fi
    if [[ $load == batch ]]; then
      line=$(wrk -t2 -c8 -d"$duration" --timeout 30s --latency -s bench/batch.lua "http://127.0.0.1:${!port}" -- "$work/$name.orgs" "$key" "$batch_size" |
        sed -n 's/^RESULT //p')
    else
      line=$(wrk -t2 -c64 -d"$duration" --latency -s bench/ingest.lua "http://127.0.0.1:${!port}" -- "$work/$name.orgs" "$key" |
        sed -n 's/^RESULT //p')
    fi
    echo "$name $line" | tee -a "$results"
    if [[ -n $stream && $name == after ]]; then
      # The undelivered events every half second while the load ran, when it stopped, and
      # the time it took to deliver them all after it.
      kill "$watcher" 2>/dev/null || true
      wait "$watcher" 2>/dev/null || true
      undelivered=$(python3 bench/streams.py undelivered "http://127.0.0.1:$after_port" "$key")
      drain_ms=$(python3 bench/streams.py drain "http://127.0.0.1:$after_port" "$key" 600)
      lags=$(paste -sd, "$work/lag.txt")
      echo "delivery {\"undelivered\":$undelivered,\"lag_while_loaded\":[$lags],\"drain_ms\":$drain_ms,\"ingest\":$line}" | tee -a "$results"
    fi
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, data = line.split(" ", 1)
    rows.setdefault(name, []).append(json.loads(data))
deliveries = rows.pop("delivery", [])
for name, runs in rows.items():
    # Only answered requests count: a refused request (non-2xx) stored nothing.
    rps = statistics.median(r.get("events", r["requests"] - r["non_2xx"]) / r["seconds"] for r in runs)
    p99 = statistics.median(r["p99_ms"] for r in runs)
    refused = sum(r["non_2xx"] for r in runs)
    print(f"{name}: median {rps:,.0f} events/s, median p99 {p99:.1f} ms (per request) over {len(runs)} runs, {refused} non-2xx responses")
if deliveries:
    # Delivered while the load ran = acknowledged minus what was still undelivered at its end.
    rate = statistics.median((d["ingest"].get("events", d["ingest"]["requests"] - d["ingest"]["non_2xx"]) - d["undelivered"]) / d["ingest"]["seconds"] for d in deliveries)
    undelivered = statistics.median(d["undelivered"] for d in deliveries)
    # The second half of each round: the streams' steady state, past the first batches.
    steady = statistics.median(statistics.median(d["lag_while_loaded"][len(d["lag_while_loaded"]) // 2:] or [0]) for d in deliveries)
    drain = statistics.median(d["drain_ms"] for d in deliveries)
    print(f"after's streams: median {rate:,.0f} events/s delivered while the load ran, median {steady:,.0f} events undelivered over its second half, {undelivered:,.0f} when it stopped, all delivered within a median {drain / 1000:.1f} s after it")
PY
