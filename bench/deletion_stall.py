"""Latency of appends to one organization while another, large one is deleted (see
bench/deletion-stall.sh): eight threads append; the DELETE goes out after 3 s."""
import datetime
import json
import sys
import threading
import time
import urllib.request

base, key, victim = sys.argv[1], sys.argv[2], sys.argv[3]
HEADERS = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, headers=HEADERS, data=data)
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"null")


call("POST", "/audit_logs/actions/user.signed_in/schemas", {"targets": [{"type": "team"}]})
other = call("POST", "/organizations", {"name": "Other"})["id"]
stopping = threading.Event()
samples = []  # (start, seconds), appended from every thread (list.append is atomic)


def append_until_stopped(thread):
    count = 0
    while not stopping.is_set():
        count += 1
        body = {"organization_id": other, "event": {
            "action": "user.signed_in",
            "occurred_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "actor": {"id": f"user_{thread}", "type": "user"},
            "targets": [{"id": f"team_{count}", "type": "team"}],
            "context": {"location": "10.0.0.1", "user_agent": "deletion-stall"}}}
        start = time.monotonic()
        call("POST", "/audit_logs/events", body)
        samples.append((start, time.monotonic() - start))


threads = [threading.Thread(target=append_until_stopped, args=(n,)) for n in range(8)]
for thread in threads:
    thread.start()
time.sleep(3)
deletion_start = time.monotonic()
deleted = call("DELETE", f"/organizations/{victim}")
deletion_end = time.monotonic()
time.sleep(1)
stopping.set()
for thread in threads:
    thread.join()


def ms(values, fraction):
    return values[min(len(values) - 1, int(fraction * len(values)))] * 1000 if values else float("nan")


before = sorted(seconds for start, seconds in samples if start < deletion_start)
# Appends sent while the deletion ran, or just before it and still waiting when it began.
during = sorted(seconds for start, seconds in samples
                if start <= deletion_end and start + seconds >= deletion_start)
print(f"deletion: {deletion_end - deletion_start:.2f} s, {deleted['purged_events']} events purged")
print(f"appends before: {len(before)}, p50 {ms(before, .5):.1f} ms, max {ms(before, 1):.1f} ms")
print(f"appends during: {len(during)}, p50 {ms(during, .5):.1f} ms, p99 {ms(during, .99):.1f} ms, "
      f"max {ms(during, 1):.1f} ms")
