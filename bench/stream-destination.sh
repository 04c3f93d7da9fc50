# Sourced by bench/compare.sh and bench/streams.sh (needs `free_port` and a `pids` array).
#
# start_stream_destination TYPE WORK_DIR: starts a local destination for log streams of
# TYPE, GenericHttps (bench/streams.py's receiver) or S3 (moto's server, installed by
# scripts/emulator-venv.sh), and sets `stream_settings` (the stream's settings JSON) and
# `destination_url`.
start_stream_destination() {
  local type=$1 work=$2 port
  port=$(free_port)
  destination_url="http://127.0.0.1:$port"
  case $type in
    GenericHttps)
      python3 bench/streams.py receiver "$port" >"$work/receiver.log" 2>&1 &
      pids+=($!)
      stream_settings="{\"type\":\"GenericHttps\",\"endpoint\":\"$destination_url/audit\",\"secret\":\"whsec_$(python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(24)).decode())')\"}"
      ;;
    S3)
      scripts/emulator-venv.sh
      "${STELE_EMULATOR_VENV:-$PWD/target/emulator-venv}/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
      pids+=($!)
      stream_settings="{\"type\":\"S3\",\"bucket\":\"stele-bench\",\"region\":\"us-east-1\",\"endpoint\":\"$destination_url\",\"access_key_id\":\"AKIDSTELEBENCH\",\"secret_access_key\":\"stele-bench-secret\",\"prefix\":\"audit\"}"
      ;;
    *)
      echo "unknown stream type $type (GenericHttps or S3)" >&2
      return 1
      ;;
  esac
  for _ in $(seq 1 300); do curl -s -o /dev/null "$destination_url/" && break; sleep 0.1; done
  if [[ $type == S3 ]]; then python3 bench/streams.py bucket "$destination_url" stele-bench; fi
}
