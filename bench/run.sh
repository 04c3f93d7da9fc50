#!/usr/bin/env bash
# Stele's benchmark harness: builds release binaries, starts every server it needs on
# loopback, runs each scenario and writes the results into BENCHMARKS.md.
#
#   bench/run.sh           full run (about 15 minutes), rewrites BENCHMARKS.md
#   bench/run.sh --smoke   seconds-long run of every scenario with tiny sizes; proves the
#                          harness works (CI runs it), asserts no speed, writes nothing
#
# Seeding the search databases (1 and 10 million events) takes most of a full run. Set
# BENCH_DATA_DIR to a directory to keep them between runs; they are reused only while the
# schema and the synthetic data are unchanged (their names carry a hash of both).
#
# Load comes from wrk (Debian package) with bench/ingest.lua: every request is a distinct
# event. Installs wrk, nginx and sqlite3 with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

mode=full
[[ "${1:-}" == "--smoke" ]] && mode=smoke
if [[ $mode == full ]]; then
  duration=30s; warmup=5s; query_duration=10s; query_warmup=2s
  search_sizes=(1000000 10000000); many_orgs=1000; many_orgs_events=1000
  ceiling_events=300000; ingest_orgs=100; batch_size=1000
else
  duration=2s; warmup=1s; query_duration=1s; query_warmup=1s
  search_sizes=(3000); many_orgs=5; many_orgs_events=200
  ceiling_events=3000; ingest_orgs=5; batch_size=50
fi

say() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# shellcheck source=bench/packages.sh
source bench/packages.sh
install_missing_packages wrk nginx sqlite3
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
# shellcheck source=bench/nginx-ceiling.sh
source bench/nginx-ceiling.sh

# The smoke run only proves the harness works, so it reuses the debug build the tests made.
if [[ $mode == full ]]; then profile=release; profile_flag=--release; else profile=debug; profile_flag=; fi
say "building $profile binaries"
cargo build $profile_flag --locked -p stele-server -p stele-bench --bins >&2
stele="$root/target/$profile/stele"
seed="$root/target/$profile/stele-seed"
ceiling="$root/target/$profile/sqlite-ceiling"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

api_key="sk_bench_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
now_ms() { date +%s%3N; }

# start_stele DB PORT: starts a server and waits for /healthz; sets stele_pid and
# startup_ms (time from exec to ready). DB is a SQLite path or a postgres:// URL.
start_stele() {
  local started url="sqlite://$1"
  [[ "$1" == postgres://* ]] && url="$1"
  started=$(now_ms)
  STELE_LISTEN="127.0.0.1:$2" STELE_DATABASE_URL="$url" STELE_API_KEY="$api_key" \
    STELE_ADMIN_PASSWORD=bench-admin-password STELE_RATE_LIMIT_PER_MINUTE=0 STELE_LOG=warn "$stele" serve >"$work/stele-$2.log" 2>&1 &
  stele_pid=$!
  pids+=("$stele_pid")
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$2/healthz" >/dev/null; then
      startup_ms=$(( $(now_ms) - started ))
      return 0
    fi
    kill -0 "$stele_pid" 2>/dev/null || break
    sleep 0.05
  done
  cat "$work/stele-$2.log" >&2
  die "stele did not start on port $2"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Samples a process's RSS every 200 ms into FILE until stopped.
sample_rss() {
  while kill -0 "$1" 2>/dev/null; do rss_mb "$1" >>"$2" 2>/dev/null || true; echo >>"$2"; sleep 0.2; done
}
max_of() { sort -n "$1" | tail -n 1; }

# wrk_ingest PORT ORGS_FILE: a RESULT json line for the ingest load.
wrk_ingest() {
  wrk -t2 -c64 -d"$warmup" -s bench/ingest.lua "http://127.0.0.1:$1" -- "$2" "$api_key" >/dev/null
  wrk -t2 -c64 -d"$duration" --latency -s bench/ingest.lua "http://127.0.0.1:$1" -- "$2" "$api_key" |
    sed -n 's/^RESULT //p'
}

results="$work/results.md"
: >"$results"

# --- a, f: single-event ingest on durable SQLite, RSS under load --------------------------
say "scenario a: single-event ingest on SQLite (${duration}, 64 connections)"
"$seed" --database "$work/ingest.db" --organizations "$ingest_orgs" --events-per-organization 0 >"$work/ingest-orgs.txt"
port=$(free_port)
start_stele "$work/ingest.db" "$port"
startup_empty=$startup_ms
ingest_pid=$stele_pid
idle_rss=$(rss_mb "$ingest_pid")
sample_rss "$ingest_pid" "$work/ingest-rss.txt" &
sampler=$!
ingest=$(wrk_ingest "$port" "$work/ingest-orgs.txt")
stop_pid "$sampler"
load_rss=$(max_of "$work/ingest-rss.txt")
stop_pid "$ingest_pid"
verify_out=$("$stele" verify --database-url "sqlite://$work/ingest.db" 2>/dev/null || true)
ingest_rps=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(round(r["requests"] / r["seconds"]))' "$ingest")

say "scenario a, for reference: the same load with ?synchronous=normal"
"$seed" --database "$work/ingest-normal.db" --organizations "$ingest_orgs" --events-per-organization 0 >"$work/ingest-normal-orgs.txt"
port=$(free_port)
start_stele "$work/ingest-normal.db?synchronous=normal" "$port"
ingest_normal=$(wrk_ingest "$port" "$work/ingest-normal-orgs.txt")
stop_pid "$stele_pid"

# --- h: batch ingest on durable SQLite -----------------------------------------------------
say "scenario h: batch ingest on SQLite (${duration}, batches of $batch_size, 8 connections)"
"$seed" --database "$work/batch.db" --organizations "$ingest_orgs" --events-per-organization 0 >"$work/batch-orgs.txt"
port=$(free_port)
start_stele "$work/batch.db" "$port"
wrk -t2 -c8 -d"$warmup" --timeout 30s -s bench/batch.lua "http://127.0.0.1:$port" -- "$work/batch-orgs.txt" "$api_key" "$batch_size" >/dev/null
batch=$(wrk -t2 -c8 -d"$duration" --timeout 30s --latency -s bench/batch.lua "http://127.0.0.1:$port" -- "$work/batch-orgs.txt" "$api_key" "$batch_size" |
  sed -n 's/^RESULT //p')
stop_pid "$stele_pid"
batch_verify_out=$("$stele" verify --database-url "sqlite://$work/batch.db" 2>/dev/null || true)
case "$batch_verify_out" in OK:*) ;; *) die "stele verify after the batch ingest: $batch_verify_out" ;; esac

# --- b: HTTP ceiling with nginx ---------------------------------------------------------
say "scenario b: nginx ceiling (one worker, return 201)"
nginx_port=$(free_port)
start_nginx_ceiling "$work/nginx" "$nginx_port"
pids+=("$nginx_pid")
ceiling_http=$(wrk_ingest "$nginx_port" "$work/ingest-orgs.txt")
stop_pid "$nginx_pid"
nginx_rps=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(round(r["requests"] / r["seconds"]))' "$ceiling_http")

# --- g: single-event ingest on PostgreSQL, one replica and two behind nginx ------------
# The same load against a fresh database on the local PostgreSQL server (the one the test
# suite uses), first through one replica, then through nginx balancing two replicas.
pg_admin_url="${STELE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_database="stele_bench_$$"
psql "$pg_admin_url" -qc "CREATE DATABASE $pg_database" >/dev/null ||
  die "PostgreSQL is not reachable at $pg_admin_url (set STELE_BENCH_POSTGRES_URL)"
pg_url="${pg_admin_url%/*}/$pg_database"
say "scenario g: single-event ingest on PostgreSQL, one replica (${duration}, 64 connections)"
"$seed" --database "$pg_url" --organizations "$ingest_orgs" --events-per-organization 0 >"$work/pg-orgs.txt"
port=$(free_port)
start_stele "$pg_url" "$port"
pg_first_pid=$stele_pid
# WAL flushes against events stored: how many events each durable commit carried.
pg_syncs_before=$(psql "$pg_admin_url" -Atc "SELECT wal_sync FROM pg_stat_wal")
ingest_pg=$(wrk_ingest "$port" "$work/pg-orgs.txt")
pg_syncs=$(( $(psql "$pg_admin_url" -Atc "SELECT wal_sync FROM pg_stat_wal") - pg_syncs_before ))
pg_events=$(psql "$pg_url" -Atc "SELECT count(*) FROM events")
say "scenario g: the same load through nginx to two replicas"
second_port=$(free_port)
start_stele "$pg_url" "$second_port"
pg_second_pid=$stele_pid
lb_port=$(free_port)
mkdir -p "$work/lb/logs"
cat >"$work/lb/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $work/lb/logs/error.log warn;
pid $work/lb/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/lb;
  proxy_temp_path $work/lb;
  fastcgi_temp_path $work/lb;
  uwsgi_temp_path $work/lb;
  scgi_temp_path $work/lb;
  upstream stele { server 127.0.0.1:$port; server 127.0.0.1:$second_port; keepalive 64; }
  server {
    listen 127.0.0.1:$lb_port;
    location / { proxy_pass http://stele; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
"$nginx_bin" -p "$work/lb" -c "$work/lb/nginx.conf" &
lb_pid=$!
pids+=("$lb_pid")
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$lb_port/healthz" && break; sleep 0.05; done
ingest_pg_two=$(wrk_ingest "$lb_port" "$work/pg-orgs.txt")
stop_pid "$lb_pid"
stop_pid "$pg_first_pid"
stop_pid "$pg_second_pid"
pg_verify_out=$("$stele" verify --database-url "$pg_url" 2>/dev/null || true)
psql "$pg_admin_url" -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" >/dev/null
case "$pg_verify_out" in OK:*) ;; *) die "stele verify after the PostgreSQL ingest: $pg_verify_out" ;; esac

# --- c: storage ceiling -------------------------------------------------------------------
say "scenario c: SQLite insert ceiling ($ceiling_events events, 1000-row durable transactions)"
ceiling_rps=$("$ceiling" --database "$work/ceiling.db" --events "$ceiling_events" --transaction-size 1000 2>/dev/null)

{
  echo "## Single-event ingest (durable SQLite)"
  echo
  echo "\`wrk -t2 -c64 -d$duration\` with \`bench/ingest.lua\` (every request a distinct event across $ingest_orgs organizations, each with its own Idempotency-Key), after a $warmup warm-up."
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  python3 - "$ingest" "$ceiling_http" "$ceiling_rps" "$ingest_normal" <<'PY'
import json, sys
stele, nginx, ceiling = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
normal = json.loads(sys.argv[4])
stele_rps = stele["requests"] / stele["seconds"]
nginx_rps = nginx["requests"] / nginx["seconds"]
print(f"| Stele events acknowledged per second | **{stele_rps:,.0f}** |")
print(f"| latency p50 / p99 / p99.9 | {stele['p50_ms']:.2f} / {stele['p99_ms']:.2f} / {stele['p999_ms']:.2f} ms |")
print(f"| non-2xx responses, socket errors | {stele['non_2xx']}, {stele['socket_errors']} |")
print(f"| nginx ceiling (same load, `return 201`, 1 worker) | {nginx_rps:,.0f} req/s, p99 {nginx['p99_ms']:.2f} ms |")
print(f"| Stele as a share of the nginx ceiling | {100 * stele_rps / nginx_rps:.1f}% |")
print(f"| SQLite ceiling (same rows, direct inserts, 1000-row durable transactions) | {ceiling:,.0f} rows/s |")
print(f"| Stele as a share of the SQLite ceiling | {100 * stele_rps / ceiling:.1f}% |")
normal_rps = normal["requests"] / normal["seconds"]
print(f"| for reference, `?synchronous=normal` (survives kill -9, not power loss) | {normal_rps:,.0f} events/s, p99 {normal['p99_ms']:.2f} ms |")
PY
  echo
  echo "## Single-event ingest on PostgreSQL"
  echo
  echo "The same load against PostgreSQL 15 on the same machine (default settings,"
  echo "\`synchronous_commit = on\`), through one replica, then through nginx (one worker)"
  echo "balancing two replicas on the one database. \`stele verify\` afterwards: $pg_verify_out"
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  python3 - "$ingest_pg" "$ingest_pg_two" "$pg_events" "$pg_syncs" <<'PY'
import json, sys
events, syncs = int(sys.argv[3]), int(sys.argv[4])
print(f"| one replica: events per WAL flush (group commit; warm-up included) | {events / max(syncs, 1):.1f} ({events:,} events, {syncs:,} flushes) |")
for label, result in (("one replica", json.loads(sys.argv[1])), ("two replicas behind nginx", json.loads(sys.argv[2]))):
    rps = result["requests"] / result["seconds"]
    print(f"| {label}: events acknowledged per second | **{rps:,.0f}** |")
    print(f"| {label}: latency p50 / p99 / p99.9 | {result['p50_ms']:.2f} / {result['p99_ms']:.2f} / {result['p999_ms']:.2f} ms |")
    print(f"| {label}: non-2xx responses, socket errors | {result['non_2xx']}, {result['socket_errors']} |")
PY
  echo "| \`stele verify\` after the run (warm-up included) | ${verify_out:-failed} |"
  echo
} >>"$results"

{
  echo "## Batch ingest (durable SQLite)"
  echo
  echo "\`wrk -t2 -c8 -d$duration\` with \`bench/batch.lua\`: each request is \`POST /audit_logs/events/batch\` with $batch_size distinct events (those of \`bench/ingest.lua\`, each with its own \`idempotency_key\`) across $ingest_orgs organizations, after a $warmup warm-up. \`stele verify\` afterwards: $batch_verify_out"
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  python3 - "$batch" "$ingest" <<'PY'
import json, sys
batch, single = json.loads(sys.argv[1]), json.loads(sys.argv[2])
events = batch["events"] / batch["seconds"]
print(f"| events acknowledged per second | **{events:,.0f}** |")
print(f"| batches per second, latency p50 / p99 per batch | {batch['requests'] / batch['seconds']:,.1f}, {batch['p50_ms']:.1f} / {batch['p99_ms']:.1f} ms |")
print(f"| refused items, non-2xx responses, socket errors | {batch['refused_items']}, {batch['non_2xx']}, {batch['socket_errors']} |")
print(f"| against single-event ingest in this run | {events / (single['requests'] / single['seconds']):.1f}x |")
PY
  echo
} >>"$results"

# --- d: search ------------------------------------------------------------------------------
# query_table PORT ORG: first-page latency of five typical searches, and of the time range
# paged by occurred_at (the `order_by=occurred_at` option; the others use sequence order).
# Each query is timed once on its own first (the first request after the server's start
# reads its index pages from disk or the file cache), then warmed up like the ingest
# scenarios, then measured: wrk corrects for coordinated omission, so one slow first
# request in a steady run shows as a p99 of hundreds of milliseconds.
query_table() {
  local port=$1 org=$2 name query result
  local -a names=("by action" "by actor id" "by target id" "by time range" "combined"
    "by time range, order_by=occurred_at")
  local -a queries=(
    "actions=document.shared"
    "actor_ids=user_417"
    "target_ids=doc_4242"
    "range_start=2026-01-02T00:00:00Z&range_end=2026-01-02T06:00:00Z"
    "actions=user.signed_in&actor_ids=user_12&target_types=team&range_start=2026-01-01T00:00:00Z&range_end=2026-01-03T00:00:00Z"
    "range_start=2026-01-02T00:00:00Z&range_end=2026-01-02T06:00:00Z&order_by=occurred_at"
  )
  for i in "${!names[@]}"; do
    name=${names[$i]}; query=${queries[$i]}
    url="http://127.0.0.1:$port/audit_logs/events?organization_id=$org&limit=10&$query"
    # Not -f: a refused request is counted by wrk's non-2xx column below, not fatal here.
    first=$(curl -s -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $api_key" "$url")
    wrk -t1 -c1 -d"$query_warmup" -s bench/get.lua "$url" -- "$api_key" >/dev/null
    result=$(wrk -t1 -c1 -d"$query_duration" --latency -s bench/get.lua "$url" -- "$api_key" | sed -n 's/^RESULT //p')
    python3 - "$name" "$result" "$first" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
first_ms = float(sys.argv[3]) * 1000
print(f"| {sys.argv[1]} | {first_ms:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['requests'] / r['seconds']:,.0f} | {r['non_2xx']} |")
PY
  done
}

# wait_checkpointed PORT ORGS_FILE EVENTS: waits until every organization in ORGS_FILE has
# a signed checkpoint of EVENTS events (on a freshly seeded database the checkpoint job
# first computes every stored subtree hash); prints the milliseconds it took.
wait_checkpointed() {
  python3 - "$1" "$2" "$3" "$api_key" <<'PY'
import json, sys, time, urllib.request
port, orgs, events, key = sys.argv[1], open(sys.argv[2]).read().split(), int(sys.argv[3]), sys.argv[4]
started = time.monotonic()
for org in orgs:
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/organizations/{org}/audit_logs/checkpoint",
                                         headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request) as response:
                if json.load(response)["tree_size"] >= events:
                    break
        except urllib.error.HTTPError:
            pass
        if time.monotonic() - started > 3600:
            sys.exit(f"no checkpoint of {org} within an hour")
        time.sleep(0.2)
print(int((time.monotonic() - started) * 1000))
PY
}

search_section() { # TITLE DB ORGS_FILE EVENTS_PER_ORG
  {
    echo "### $1"
    echo
    echo "| query (first page, limit 10) | first request ms | p50 ms | p99 ms | queries/s | non-2xx |"
    echo "| --- | --- | --- | --- | --- | --- |"
  } >>"$results"
  local port checkpointed_ms
  port=$(free_port)
  start_stele "$2" "$port"
  # Search is measured in the steady state: after the checkpoint job has caught up.
  checkpointed_ms=$(wait_checkpointed "$port" "$3" "$4")
  query_table "$port" "$(head -n 1 "$3")" >>"$results"
  stop_pid "$stele_pid"
  echo >>"$results"
  echo "Time from start until every organization has a signed checkpoint: $(python3 -c "print(f'{$checkpointed_ms / 1000:.1f}')") s (on a freshly seeded database the job first computes the stored subtree hashes of every event; a reused one already has them)." >>"$results"
  echo >>"$results"
}

# seeded_database NAME ORGANIZATIONS EVENTS: path of a database seeded with that many
# events per organization (reused from BENCH_DATA_DIR when possible); its organization ids
# are in PATH.orgs.
seed_key=$(cat crates/stele-store/migrations/sqlite/*.sql bench/src/lib.rs | sha256sum | cut -c1-12)
seeded_database() {
  local dir=${BENCH_DATA_DIR:-$work}
  mkdir -p "$dir"
  local db="$dir/$1-$seed_key.db"
  if [[ -f "$db" && -f "$db.orgs" ]]; then
    say "reusing $db"
  else
    rm -f "$db" "$db-wal" "$db-shm" "$db-search" "$db-search-wal" "$db-search-shm"
    say "seeding $1: $2 organization(s) x $3 events"
    "$seed" --database "$db" --organizations "$2" --events-per-organization "$3" >"$db.orgs.partial" 2>"$work/seed-$1.log"
    say "$(tail -n 1 "$work/seed-$1.log")"
    mv "$db.orgs.partial" "$db.orgs"
  fi
  echo "$db"
}

echo "## Search (\`GET /audit_logs/events\`, one connection)" >>"$results"
echo >>"$results"
echo "Each query is requested once on its own after the server's start and the checkpoint wait (\`first request ms\`: its index pages may still be on disk), then warmed up for $query_warmup, then measured with \`wrk -t1 -c1 -d$query_duration\`." >>"$results"
echo >>"$results"
export_db=""
export_org=""
export_events=0
for size in "${search_sizes[@]}"; do
  db=$(seeded_database "search-$size" 1 "$size")
  org=$(head -n 1 "$db.orgs")
  search_section "$size events in one organization" "$db" "$db.orgs" "$size"
  if [[ -z "$export_db" ]]; then export_db=$db; export_org=$org; export_events=$size; fi
done
db=$(seeded_database "many-$many_orgs" "$many_orgs" "$many_orgs_events")
search_section "$many_orgs organizations x $many_orgs_events events (querying one)" "$db" "$db.orgs" "$many_orgs_events"

# --- e, f: export throughput and memory; start-up time ------------------------------------
say "scenario e: CSV export of $export_events events"
port=$(free_port)
start_stele "$export_db" "$port"
startup_full=$startup_ms
export_pid=$stele_pid
before_rss=$(rss_mb "$export_pid")
# The yardstick: the sqlite3 command-line tool writing the same rows (every stored column,
# the event's canonical JSON included) as CSV from the same file, in the same run. It runs
# once untimed first, so that the export and the timed dump both read the file from the
# page cache (the search scenarios before this one leave other files' pages there, and
# whichever read first would pay for the disk).
dump_sql="SELECT id, organization_id, sequence, action, occurred_at, received_at, actor_id, actor_name, CAST(canonical AS TEXT) FROM events WHERE organization_id = '$export_org' ORDER BY sequence"
sqlite3 -csv "$export_db" "$dump_sql" >/dev/null
url=$(curl -sf -X POST "http://127.0.0.1:$port/audit_logs/exports" -H "Authorization: Bearer $api_key" \
  -H 'Content-Type: application/json' \
  -d "{\"organization_id\":\"$export_org\",\"range_start\":\"2000-01-01T00:00:00Z\",\"range_end\":\"2100-01-01T00:00:00Z\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
: >"$work/export-rss.txt"
sample_rss "$export_pid" "$work/export-rss.txt" &
sampler=$!
started=$(now_ms)
bytes=$(curl -sf "$url" | wc -c)
export_ms=$(( $(now_ms) - started ))
stop_pid "$sampler"
peak_rss=$(max_of "$work/export-rss.txt")
started=$(now_ms)
dump_bytes=$(sqlite3 -csv "$export_db" "$dump_sql" | wc -c)
dump_ms=$(( $(now_ms) - started ))

# The same events as proven JSONL: each line carries the event's inclusion proof against
# the checkpoint the search section's server signed.
say "scenario e, proven: proven JSONL export of $export_events events"
url=$(curl -sf -X POST "http://127.0.0.1:$port/audit_logs/exports" -H "Authorization: Bearer $api_key" \
  -H 'Content-Type: application/json' \
  -d "{\"organization_id\":\"$export_org\",\"range_start\":\"2000-01-01T00:00:00Z\",\"range_end\":\"2100-01-01T00:00:00Z\",\"format\":\"jsonl\",\"include_proofs\":true}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
: >"$work/proven-rss.txt"
sample_rss "$export_pid" "$work/proven-rss.txt" &
sampler=$!
started=$(now_ms)
curl -sf "$url" >"$work/proven.jsonl"
proven_ms=$(( $(now_ms) - started ))
stop_pid "$sampler"
proven_peak_rss=$(max_of "$work/proven-rss.txt")
proven_bytes=$(wc -c <"$work/proven.jsonl")
key=$(curl -sf "http://127.0.0.1:$port/audit_logs/signing_keys" -H "Authorization: Bearer $api_key" |
  python3 -c 'import json, sys; print(next(k["verifier_key"] for k in json.load(sys.stdin)["data"] if k["current"]))')
started=$(now_ms)
"$stele" verify-export "$work/proven.jsonl" --public-key "$key" >&2
verify_export_ms=$(( $(now_ms) - started ))
rm -f "$work/proven.jsonl"
stop_pid "$export_pid"
{
  echo "## Export (CSV, streamed)"
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  python3 - "$export_events" "$export_ms" "$bytes" "$before_rss" "$peak_rss" "$dump_ms" "$dump_bytes" <<'PY'
import sys
events, ms, size, before, peak = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
dump_ms, dump_size = int(sys.argv[6]), int(sys.argv[7])
print(f"| events exported | {events:,} ({size / 1e6:,.0f} MB of CSV) |")
print(f"| time to download | {ms / 1000:.2f} s |")
print(f"| rows per second | **{events / (ms / 1000):,.0f}** |")
print(f"| `sqlite3 -csv` writing the same rows (stored columns and canonical JSON, {dump_size / 1e6:,.0f} MB) | {dump_ms / 1000:.2f} s, {events / (dump_ms / 1000):,.0f} rows/s |")
print(f"| Stele's rate as a share of sqlite3's | **{100 * dump_ms / ms:.1f}%** |")
print(f"| server RSS before / peak during | {before:.0f} MB / {peak:.0f} MB (+{peak - before:.0f} MB) |")
PY
  echo
  echo "## Proven export (JSONL with inclusion proofs, streamed)"
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  python3 - "$export_events" "$proven_ms" "$proven_bytes" "$before_rss" "$proven_peak_rss" "$verify_export_ms" <<'PY'
import sys
events, ms, size, before, peak, verify = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print(f"| proven JSONL download | {ms / 1000:.2f} s, {size / 1e6:,.0f} MB, **{events / (ms / 1000):,.0f}** rows/s |")
print(f"| server RSS before / peak during | {before:.0f} MB / {peak:.0f} MB |")
print(f"| `stele verify-export` of the file, offline | {verify / 1000:.2f} s |")
PY
  echo
  echo "## Memory and start-up"
  echo
  echo "| measure | value |"
  echo "| --- | --- |"
  echo "| RSS idle / peak under the ingest load | ${idle_rss} MB / ${load_rss} MB |"
  echo "| start-up to ready, empty database | ${startup_empty} ms |"
  echo "| start-up to ready, $export_events events stored | ${startup_full} ms |"
  echo
} >>"$results"

machine() {
  local cpu mem
  cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
  echo "$(nproc) cores ($cpu), $mem RAM, $(uname -sr), load generator on the same cores"
}

if [[ $mode == smoke ]]; then
  cat "$results"
  say "smoke run complete: every scenario ran (figures from a smoke run mean nothing)"
  exit 0
fi

{
  echo "# Stele benchmarks"
  echo
  echo "Generated by \`bench/run.sh\` on $(date -u +%Y-%m-%d) at commit \`$(git rev-parse --short HEAD)\`."
  echo "Machine: $(machine). Figures are from one run; the machine is shared, so compare"
  echo "ratios measured in the same run rather than absolute numbers across runs."
  echo
  cat "$results"
  cat bench/NOTES.md
} >BENCHMARKS.md
say "wrote BENCHMARKS.md"
