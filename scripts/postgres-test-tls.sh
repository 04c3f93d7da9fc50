#!/usr/bin/env bash
# Turns on TLS with a test certificate authority on the local PostgreSQL cluster, for the
# tests of `sslmode=require` / `verify-full` (crates/stele-store/src/postgres/tests_tls.rs).
# Idempotent: does nothing when the cluster already serves a valid certificate of this CA.
#
# Creates, in <data directory>/stele-test-tls/ (owned by the postgres user, mode 0700):
#   ca.pem, ca.key           the test CA
#   server.crt, server.key   the server certificate for 127.0.0.1, ::1 and localhost
#   other-ca.pem             an unrelated CA (verify-full against it must fail)
# then points ssl_cert_file/ssl_key_file at them and sets ssl = on with ALTER SYSTEM and a
# configuration reload (pg_reload_conf(), never a restart: plain connections keep working
# and open sessions are untouched).
#
# Usage: scripts/postgres-test-tls.sh [ADMIN_URL]   (default $STELE_TEST_POSTGRES_URL or
# postgres://postgres@127.0.0.1:5432/postgres). Must run on the database's machine as root
# or as the postgres user. Prints the directory holding ca.pem on its last line.
set -euo pipefail

url="${1:-${STELE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
die() { printf 'postgres-test-tls.sh: %s\n' "$*" >&2; exit 1; }
if ! command -v openssl >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing openssl"
  apt-get install -y -qq openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
fi
for tool in psql openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed"
done
sql() { psql "$url" -v ON_ERROR_STOP=1 -Atqc "$1"; }

data_dir=$(sql 'SHOW data_directory') || die "cannot query PostgreSQL at $url"
[[ -d "$data_dir" ]] || die "the data directory $data_dir is not on this machine; run this where PostgreSQL runs"
dir="$data_dir/stele-test-tls"
owner=$(stat -c %U "$data_dir")

# Whether the server already serves a certificate of our CA, valid for another day.
current() {
  [[ -f "$dir/ca.pem" && -f "$dir/server.crt" && -f "$dir/server.key" && -f "$dir/other-ca.pem" ]] || return 1
  openssl verify -CAfile "$dir/ca.pem" "$dir/server.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$dir/server.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  [[ "$(sql 'SHOW ssl')" == on && "$(sql 'SHOW ssl_cert_file')" == "$dir/server.crt" ]] || return 1
  psql "host=127.0.0.1 port=$(sql 'SHOW port') user=$(sql 'SELECT current_user') dbname=postgres sslmode=verify-full sslrootcert=$dir/ca.pem" \
    -Atqc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null | grep -qx t
}

if current; then
  echo "PostgreSQL already serves TLS with the test CA"
  echo "$dir"
  exit 0
fi

echo "creating a test CA and a server certificate in $dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Stele test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Unrelated test CA" \
  -keyout "$work/other-ca.key" -out "$work/other-ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
cat >"$work/server.ext" <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
EXT
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 825 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null

mkdir -p "$dir"
for file in ca.pem ca.key other-ca.pem server.crt server.key; do
  install -m 0600 "$work/$file" "$dir/$file"
done
chmod 0644 "$dir/ca.pem" "$dir/other-ca.pem"
chmod 0700 "$dir"
if [[ "$(id -u)" == 0 ]]; then chown -R "$owner:" "$dir"; fi

sql "ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt'" >/dev/null
sql "ALTER SYSTEM SET ssl_key_file = '$dir/server.key'" >/dev/null
sql "ALTER SYSTEM SET ssl = on" >/dev/null
sql 'SELECT pg_reload_conf()' >/dev/null
for _ in $(seq 1 20); do
  if current; then
    echo "PostgreSQL serves TLS with the test CA (reloaded, not restarted)"
    echo "$dir"
    exit 0
  fi
  sleep 0.5
done
die "PostgreSQL did not take the new certificate after a reload (see its log: a key it cannot read is refused, and the previous TLS settings stay)"
