"""Log stream benchmark helpers (standard library only), used by bench/streams.sh and
bench/compare.sh:

  streams.py receiver PORT
      a GenericHttps receiver: answers 200 to every batch, and checks as it goes that each
      organization's batches arrive in order with no gap (a duplicate is allowed: delivery
      is at least once). GET /stats returns its counts as JSON.
  streams.py bucket ENDPOINT BUCKET
      creates a bucket on a local S3-compatible server (moto accepts unsigned creation).
  streams.py create URL KEY ORGS_FILE SETTINGS_JSON
      creates one stream with SETTINGS_JSON for each organization in ORGS_FILE.
  streams.py seed URL KEY ORGANIZATION EVENTS
      stores EVENTS events in ORGANIZATION through the batch endpoint, 1,000 per request.
  streams.py undelivered URL KEY
      prints the events not yet delivered, summed over every stream (from /metrics).
  streams.py watch URL KEY
      prints the undelivered events every half second, one line each, until killed.
  streams.py drain URL KEY TIMEOUT_SECONDS
      waits until every stream has delivered everything; prints the milliseconds it took.
"""

import http.server
import json
import sys
import threading
import time
import urllib.request


def call(url, key, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = response.read()
    return payload


def receiver(port):
    lock = threading.Lock()
    delivered = {}  # organization id -> highest sequence received
    stats = {"requests": 0, "events": 0, "duplicate_events": 0, "gaps": 0, "bytes": 0,
             "first_at": None, "last_at": None}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The status line and headers, then the body, are separate writes: with Nagle's
        # algorithm the second waits for the client's delayed ACK (40 ms a request).
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def answer(self, status, body=b"{}"):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with lock:
                body = json.dumps({**stats, "delivered_through": sum(delivered.values())})
            self.answer(200, body.encode())

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            batch = json.loads(raw)
            events = batch.get("events", [])
            first, last = batch.get("first_sequence"), batch.get("last_sequence")
            now = time.monotonic()
            with lock:
                stats["requests"] += 1
                stats["bytes"] += len(raw)
                if events:
                    organization = batch["organization_id"]
                    high = delivered.get(organization, 0)
                    if first > high + 1 or last - first + 1 != len(events):
                        stats["gaps"] += 1
                    stats["duplicate_events"] += max(0, min(high, last) - first + 1)
                    stats["events"] += len(events)
                    delivered[organization] = max(high, last)
                    stats["first_at"] = stats["first_at"] or now
                    stats["last_at"] = now
            self.answer(200)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    server.serve_forever()


def bucket(endpoint, name):
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT"), timeout=30).read()


def create(url, key, orgs_file, settings):
    for organization in open(orgs_file).read().split():
        call(f"{url}/organizations/{organization}/audit_logs/log_streams", key, "POST",
             json.loads(settings))


def seed(url, key, organization, count):
    actions = ["user.signed_in", "user.signed_out", "document.viewed", "document.shared"]
    stored = 0
    while stored < count:
        size = min(1000, count - stored)
        events = []
        for n in range(stored, stored + size):
            events.append({"organization_id": organization, "event": {
                "action": actions[n % 4],
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "actor": {"id": f"user_{n % 1000}", "type": "user", "name": f"User {n % 1000}",
                          "metadata": {"role": "admin" if n % 10 == 0 else "member"}},
                "targets": [{"id": f"team_{n % 100}", "type": "team"},
                            {"id": f"doc_{n % 10000}", "type": "document"}],
                "context": {"location": f"10.0.{n % 256}.{n % 7}", "user_agent": "bench/streams"},
                "metadata": {"request_id": f"req_seed_{n}"},
            }})
        answer = json.loads(call(f"{url}/audit_logs/events/batch", key, "POST",
                                 {"events": events}))
        refused = [item for item in answer["data"] if not item["success"]]
        if refused:
            sys.exit(f"seeding refused {len(refused)} events: {refused[0]}")
        stored += size


def lag(url, key):
    """Undelivered events over every stream; fails rather than read a failed scrape as 0."""
    total, series = 0, 0
    for line in call(f"{url}/metrics", key).decode().splitlines():
        if line.startswith("stele_stream_lag_events{"):
            total += int(float(line.rsplit(" ", 1)[1]))
            series += 1
        elif line.startswith("stele_metrics_scrape_errors") and float(line.rsplit(" ", 1)[1]) != 0:
            sys.exit("/metrics could not read the streams' positions")
    if series == 0:
        sys.exit("/metrics lists no log stream")
    return total


def watch(url, key):
    while True:
        print(lag(url, key), flush=True)
        time.sleep(0.5)


def drain(url, key, timeout):
    started = time.monotonic()
    while lag(url, key) > 0:
        if time.monotonic() - started > timeout:
            sys.exit(f"the streams did not catch up within {timeout} s")
        time.sleep(0.1)
    print(int((time.monotonic() - started) * 1000))


def main(args):
    command = args[0]
    if command == "receiver":
        receiver(args[1])
    elif command == "bucket":
        bucket(args[1], args[2])
    elif command == "create":
        create(*args[1:5])
    elif command == "seed":
        seed(args[1], args[2], args[3], int(args[4]))
    elif command == "undelivered":
        print(lag(args[1], args[2]))
    elif command == "watch":
        watch(args[1], args[2])
    elif command == "drain":
        drain(args[1], args[2], float(args[3]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
