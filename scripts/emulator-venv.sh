#!/usr/bin/env bash
# Installs the object store emulators that the log stream tests and benchmarks run
# (moto's S3 server, gcp-storage-emulator) into one Python venv, once: a venv that already
# has both is reused. The venv is $STELE_EMULATOR_VENV, or target/emulator-venv.
#
# gcp-storage-emulator is pinned: scripts/gcs-emulator.py, which starts it, replaces one of
# its handlers (see that script).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
emulator_venv="${STELE_EMULATOR_VENV:-$PWD/target/emulator-venv}"
if [ ! -x "$emulator_venv/bin/moto_server" ] ||
  ! "$emulator_venv/bin/python" -c 'import gcp_storage_emulator' >/dev/null 2>&1; then
  python3 -m venv "$emulator_venv"
  "$emulator_venv/bin/pip" install --quiet --upgrade pip
  "$emulator_venv/bin/pip" install --quiet 'moto[server]>=5,<6' 'gcp-storage-emulator==2026.7.19'
fi
