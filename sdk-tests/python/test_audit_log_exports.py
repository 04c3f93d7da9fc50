"""Audit log exports through workos 10.x `client.audit_logs.create_export / get_export`.

The export's signed URL is downloaded with a plain HTTP client (urllib, no
Authorization header) and the CSV is parsed and compared row by row with the
events this module emitted.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from workos import BadRequestError, NotFoundError, WorkOSClient
from workos.audit_logs.models import (
    AuditLogEvent,
    AuditLogEventActor,
    AuditLogEventContext,
    AuditLogEventTarget,
    AuditLogExport,
    AuditLogSchemaActor,
    AuditLogSchemaTarget,
)
from workos.common.models.audit_log_export_state import AuditLogExportState

from conftest import Recorder, make_recorder, unique

UTC = getattr(datetime, "UTC", datetime.timezone.utc)
EXPORT_ID = re.compile(r"^audit_log_export_[0-9A-HJKMNP-TV-Z]{26}$")
EVENT_ID = re.compile(r"^audit_log_event_[0-9A-HJKMNP-TV-Z]{26}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MISSING_ORG = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV"

CSV_COLUMNS = [
    "id",
    "organization_id",
    "sequence",
    "version",
    "action",
    "occurred_at",
    "received_at",
    "actor_id",
    "actor_type",
    "actor_name",
    "actor_metadata",
    "targets",
    "context_location",
    "context_user_agent",
    "metadata",
]
# WorkOS's per-target column groups follow Stele's own columns (a fixed number of groups).
CSV_TARGET_GROUPS = 10
CSV_COLUMNS += [
    f"target_{field}_{n}"
    for n in range(1, CSV_TARGET_GROUPS + 1)
    for field in ("id", "type", "name", "metadata")
]
JSON_COLUMNS = {"actor_metadata", "targets", "metadata"}

BASE = datetime.datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
RANGE_START = BASE
RANGE_END = BASE + 4 * HOUR  # inclusive: e5 occurs exactly at range_end

ALICE = AuditLogEventActor(id="user_alice", type="user", name="Alice Liddell", metadata={"role": "admin"})
BOB = AuditLogEventActor(id="user_bob", type="user", name="Bob")
CAROL = AuditLogEventActor(id="user_carol", type="user", name='Carol "CJ" Jones, Jr.')
API_KEY_ACTOR = AuditLogEventActor(id="key_ci", type="api_key")  # no name, no metadata
ROLE_SCHEMA = {"type": "object", "properties": {"role": {"type": "string"}}}


def iso(dt: datetime.datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


@dataclass
class Emitted:
    name: str
    id: str
    sequence: int
    event: AuditLogEvent


@dataclass
class World:
    org_id: str
    update: str
    delete: str
    login: str
    events: dict[str, Emitted] = field(default_factory=dict)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Emitted:
        return self.events[name]


def emit(rec: Recorder, org_id: str, event: AuditLogEvent) -> str:
    """Create one event through the SDK; return the id the SDK's model drops."""
    resp = rec.sdk.audit_logs.create_event(organization_id=org_id, event=event)
    assert resp.success is True
    ex = rec.last()
    assert ex.status == 200, ex.response_text
    event_id = ex.response_json()["id"]
    assert EVENT_ID.match(event_id), event_id
    return event_id


def search_all(client: WorkOSClient, org_id: str, **filters: Any) -> list[dict[str, Any]]:
    """Stele extension GET /audit_logs/events (no SDK method): the SDK's generic
    client.request_raw, following `after` cursors, oldest first."""
    params: dict[str, Any] = {"organization_id": org_id, "order": "asc", "limit": 100, **filters}
    out: list[dict[str, Any]] = []
    while True:
        page = client.request_raw("get", ("audit_logs", "events"), params=params)
        assert page["object"] == "list"
        out.extend(page["data"])
        after = page["list_metadata"]["after"]
        if not after:
            return out
        params["after"] = after


@pytest.fixture(scope="module")
def world(base_url: str, api_key: str, server_reachable: None, client: WorkOSClient) -> World:
    rec, http = make_recorder(base_url, api_key)
    try:
        org = rec.sdk.organizations.create_organization(name=unique("Stele Py Export"))
        uid = uuid.uuid4().hex[:8]
        w = World(
            org_id=org.id,
            update=f"document.updated.{uid}",
            delete=f"document.deleted.{uid}",
            login=f"user.signed_in.{uid}",
        )
        actor = AuditLogSchemaActor(metadata=ROLE_SCHEMA)
        rec.sdk.audit_logs.create_schema(
            w.update,
            targets=[AuditLogSchemaTarget(type="document"), AuditLogSchemaTarget(type="team")],
            actor=actor,
            metadata={"type": "object", "properties": {"field": {"type": "string"}}},
        )
        rec.sdk.audit_logs.create_schema(w.delete, targets=[AuditLogSchemaTarget(type="document")], actor=actor)
        rec.sdk.audit_logs.create_schema(w.login, targets=[AuditLogSchemaTarget(type="team")], actor=actor)

        team = AuditLogEventTarget(id="team_red", type="team", name="Red team")
        plan: list[tuple[str, AuditLogEvent]] = [
            ("early", AuditLogEvent(  # one second before range_start: excluded
                action=w.login, occurred_at=BASE - datetime.timedelta(seconds=1), actor=ALICE,
                targets=[team], context=AuditLogEventContext(location="10.0.0.1"))),
            ("e1", AuditLogEvent(
                action=w.update, occurred_at=BASE, actor=ALICE,
                targets=[
                    AuditLogEventTarget(id="doc_1", type="document", name="Plan, v2", metadata={"pages": 12}),
                    team,
                ],
                context=AuditLogEventContext(location="10.0.0.1", user_agent="Firefox/120.0"),
                metadata={"field": "title"})),
            ("e2", AuditLogEvent(
                action=w.delete, occurred_at=BASE + HOUR, actor=BOB,
                targets=[AuditLogEventTarget(id="doc_2", type="document")],
                context=AuditLogEventContext(location="10.0.0.2"))),
            ("e3", AuditLogEvent(
                action=w.login, occurred_at=BASE + 2 * HOUR, actor=ALICE, targets=[team],
                context=AuditLogEventContext(location="10.0.0.1", user_agent="Firefox/120.0"))),
            ("e4", AuditLogEvent(
                action=w.update, occurred_at=BASE + 3 * HOUR, actor=CAROL,
                targets=[AuditLogEventTarget(id="doc_3", type="document", name="Line 1\nLine 2")],
                context=AuditLogEventContext(location="2001:db8::1", user_agent="curl/8.5.0"),
                metadata={"field": "body"})),
            ("e5", AuditLogEvent(
                action=w.delete, occurred_at=RANGE_END, actor=API_KEY_ACTOR,
                targets=[AuditLogEventTarget(id="doc_4", type="document")],
                context=AuditLogEventContext(location="10.0.0.9"))),
            ("late", AuditLogEvent(  # one second after range_end: excluded
                action=w.update, occurred_at=RANGE_END + datetime.timedelta(seconds=1), actor=ALICE,
                targets=[AuditLogEventTarget(id="doc_1", type="document")],
                context=AuditLogEventContext(location="10.0.0.1"))),
        ]
        for sequence, (name, event) in enumerate(plan, start=1):
            w.events[name] = Emitted(name=name, id=emit(rec, org.id, event), sequence=sequence, event=event)

        stored = search_all(client, org.id)
        assert [e["id"] for e in stored] == [w.events[n].id for n, _ in plan]
        w.stored = {e["id"]: e for e in stored}
        yield w
    finally:
        http.close()


def expected_row(w: World, name: str) -> dict[str, Any]:
    em = w[name]
    e = em.event
    stored = w.stored[em.id]
    assert TIMESTAMP.match(stored["received_at"]), stored
    return {
        "id": em.id,
        "organization_id": w.org_id,
        "sequence": str(em.sequence),
        "version": "1",
        "action": e.action,
        "occurred_at": iso(e.occurred_at),
        "received_at": stored["received_at"],
        "actor_id": e.actor.id,
        "actor_type": e.actor.type,
        "actor_name": e.actor.name or "",
        "actor_metadata": e.actor.metadata,
        "targets": [t.to_dict() for t in e.targets],
        "context_location": e.context.location,
        "context_user_agent": e.context.user_agent or "",
        "metadata": e.metadata,
        **target_columns([t.to_dict() for t in e.targets]),
    }


def target_columns(targets: list[dict[str, Any]]) -> dict[str, str]:
    """WorkOS's per-target cells: id, type, name and canonical JSON metadata, empty when absent."""
    cells: dict[str, str] = {}
    for n in range(1, CSV_TARGET_GROUPS + 1):
        t = targets[n - 1] if n <= len(targets) else {}
        metadata = t.get("metadata")
        cells[f"target_id_{n}"] = t.get("id") or ""
        cells[f"target_type_{n}"] = t.get("type") or ""
        cells[f"target_name_{n}"] = t.get("name") or ""
        cells[f"target_metadata_{n}"] = (
            json.dumps(metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            if metadata is not None
            else ""
        )
    return cells


@dataclass
class Download:
    status: int
    content_type: str
    text: str
    json: Optional[dict[str, Any]] = None


def download(url: str) -> Download:
    """A plain HTTP GET (no SDK, no Authorization header)."""
    req = urllib.request.Request(url, method="GET")
    assert "Authorization" not in req.headers
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Download(resp.status, resp.headers.get("content-type", ""), resp.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        body = err.read().decode("utf-8", "replace")
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        return Download(err.code, err.headers.get("content-type", ""), body, parsed)


def parse_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == CSV_COLUMNS, reader.fieldnames
    rows = []
    for raw in reader:
        assert None not in raw, f"row has more cells than the header: {raw}"
        row: dict[str, Any] = dict(raw)
        for col in JSON_COLUMNS:
            row[col] = strip_nulls(json.loads(row[col])) if row[col] != "" else None
        rows.append(row)
    return rows


def wait_until_ready(sdk: WorkOSClient, export_id: str, timeout: float = 30.0) -> AuditLogExport:
    deadline = time.monotonic() + timeout
    while True:
        export = sdk.audit_logs.get_export(export_id)
        assert isinstance(export, AuditLogExport)
        assert export.id == export_id
        assert export.state in (AuditLogExportState.PENDING, AuditLogExportState.READY), export.state
        if export.state == AuditLogExportState.READY:
            assert isinstance(export.url, str) and export.url.startswith("http"), export.url
            return export
        assert export.url is None, "url is set only once the export is ready"
        assert time.monotonic() < deadline, f"export {export_id} not ready after {timeout}s"
        time.sleep(0.2)


def export_rows(sdk: WorkOSClient, export_id: str) -> list[dict[str, Any]]:
    ready = wait_until_ready(sdk, export_id)
    got = download(ready.url)
    assert got.status == 200, (got.status, got.text)
    assert got.content_type.startswith("text/csv"), got.content_type
    return parse_csv(got.text)


def assert_rows(rows: list[dict[str, Any]], w: World, names: list[str]) -> None:
    by_id = {em.id: n for n, em in w.events.items()}
    assert [by_id.get(r["id"], r["id"]) for r in rows] == names
    assert rows == [expected_row(w, n) for n in names]


# --- creating and reading exports ---------------------------------------------


def test_create_export_request_and_response(wire: Recorder, world: World) -> None:
    export = wire.sdk.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END
    )
    ex = wire.last()
    assert ex.method == "POST" and urlsplit(ex.url).path == "/audit_logs/exports"
    assert ex.request_body == {
        "organization_id": world.org_id,
        "range_start": "2024-03-01T10:00:00.000Z",
        "range_end": "2024-03-01T14:00:00.000Z",
    }
    assert ex.request_headers.get("idempotency-key"), "the SDK sends Idempotency-Key on every POST"
    assert ex.status == 201, ex.response_text
    raw = ex.response_json()
    assert raw["object"] == "audit_log_export"
    assert TIMESTAMP.match(raw["created_at"]) and TIMESTAMP.match(raw["updated_at"]), raw
    assert "url" in raw

    assert isinstance(export, AuditLogExport)
    assert export.object == "audit_log_export"
    assert EXPORT_ID.match(export.id), export.id
    assert export.state in (AuditLogExportState.PENDING, AuditLogExportState.READY)
    assert export.created_at.utcoffset() == datetime.timedelta(0)
    assert export.updated_at >= export.created_at

    got = wire.sdk.audit_logs.get_export(export.id)
    ex = wire.last()
    assert ex.method == "GET" and urlsplit(ex.url).path == f"/audit_logs/exports/{export.id}"
    assert ex.status == 200
    assert got.id == export.id
    assert got.created_at == export.created_at


def test_export_all_events_in_range(client: WorkOSClient, world: World) -> None:
    """Bounds are inclusive; events one second outside either bound are absent."""
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END
    )
    rows = export_rows(client, export.id)
    assert_rows(rows, world, ["e1", "e2", "e3", "e4", "e5"])


def test_export_csv_text_details(client: WorkOSClient, world: World) -> None:
    """Quoting of commas/quotes/newlines, empty cells for absent values, sequence numbers."""
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actions=[world.update, world.delete],
    )
    ready = wait_until_ready(client, export.id)
    got = download(ready.url)
    assert got.status == 200
    assert got.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(got.text, newline="")))
    by_seq = {r["sequence"]: r for r in rows}
    assert sorted(by_seq) == ["2", "3", "5", "6"]
    assert by_seq["5"]["actor_name"] == 'Carol "CJ" Jones, Jr.'
    assert json.loads(by_seq["5"]["targets"])[0]["name"] == "Line 1\nLine 2"
    assert json.loads(by_seq["2"]["targets"])[0]["name"] == "Plan, v2"
    for blank in ("actor_name", "actor_metadata", "context_user_agent", "metadata"):
        assert by_seq["6"][blank] == "", (blank, by_seq["6"])
    assert by_seq["6"]["actor_type"] == "api_key"


def test_export_filters_actions_and_actor_names(wire: Recorder, world: World) -> None:
    """AND across fields, OR within a field."""
    export = wire.sdk.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actions=[world.update, world.delete], actor_names=["Alice Liddell", "Bob"],
    )
    sent = wire.last().request_body
    assert sent["actions"] == [world.update, world.delete]
    assert sent["actor_names"] == ["Alice Liddell", "Bob"]
    assert_rows(export_rows(wire.sdk, export.id), world, ["e1", "e2"])


def test_export_actors_alias(wire: Recorder, world: World) -> None:
    """workos 10 still sends the deprecated `actors` field as given (alias of actor_names)."""
    export = wire.sdk.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actors=[CAROL.name],
    )
    sent = wire.last().request_body
    assert sent["actors"] == [CAROL.name] and "actor_names" not in sent
    assert_rows(export_rows(wire.sdk, export.id), world, ["e4"])


def test_export_filters_actor_ids_and_target_types(client: WorkOSClient, world: World) -> None:
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actor_ids=[ALICE.id, API_KEY_ACTOR.id], targets=["document"],
    )
    assert_rows(export_rows(client, export.id), world, ["e1", "e5"])

    team = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        targets=["team"],
    )
    assert_rows(export_rows(client, team.id), world, ["e1", "e3"])


def test_export_without_matches_has_only_the_header(client: WorkOSClient, world: World) -> None:
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actions=[world.login], actor_names=["Bob"],
    )
    assert export_rows(client, export.id) == []


def test_export_is_a_snapshot(wire: Recorder, client: WorkOSClient, world: World) -> None:
    """Events stored after the export was created are not in it, on any later download."""
    org = client.organizations.create_organization(name=unique("Stele Py Snapshot"))
    names = []
    for i in range(2):
        names.append(emit(wire, org.id, AuditLogEvent(
            action=world.login, occurred_at=BASE + i * HOUR, actor=BOB,
            targets=[AuditLogEventTarget(id=f"team_{i}", type="team")],
            context=AuditLogEventContext(location="10.1.1.1"))))
    export = client.audit_logs.create_export(
        organization_id=org.id, range_start=RANGE_START, range_end=RANGE_END
    )
    first = wait_until_ready(client, export.id)

    late = emit(wire, org.id, AuditLogEvent(  # inside the range, but stored afterwards
        action=world.login, occurred_at=BASE + 30 * datetime.timedelta(minutes=1), actor=BOB,
        targets=[AuditLogEventTarget(id="team_late", type="team")],
        context=AuditLogEventContext(location="10.1.1.1")))

    got = download(first.url)
    assert got.status == 200
    assert [r["id"] for r in parse_csv(got.text)] == names
    again = wait_until_ready(client, export.id)
    assert [r["id"] for r in parse_csv(download(again.url).text)] == names

    fresh = client.audit_logs.create_export(
        organization_id=org.id, range_start=RANGE_START, range_end=RANGE_END
    )
    rows = export_rows(client, fresh.id)
    # rows come in sequence (storage) order
    assert [(r["id"], r["sequence"]) for r in rows] == [(names[0], "1"), (names[1], "2"), (late, "3")]


def test_get_export_issues_a_fresh_url_each_time(client: WorkOSClient, world: World) -> None:
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END,
        actions=[world.login],
    )
    first = wait_until_ready(client, export.id)
    time.sleep(0.05)
    second = wait_until_ready(client, export.id)
    assert first.url != second.url, "each GET signs a fresh link"
    one, two = download(first.url), download(second.url)
    assert one.status == two.status == 200
    assert one.text == two.text
    assert_rows(parse_csv(one.text), world, ["e3"])


def test_forged_download_link_is_refused(client: WorkOSClient, world: World) -> None:
    export = client.audit_logs.create_export(
        organization_id=world.org_id, range_start=RANGE_START, range_end=RANGE_END
    )
    url = wait_until_ready(client, export.id).url
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert set(query) >= {"signature"}, url
    sig = query["signature"]
    query["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    forged = download(urlunsplit(parts._replace(query=urlencode(query))))
    assert forged.status in (401, 403, 404), (forged.status, forged.text)
    assert "audit_log_event_" not in forged.text


# --- errors -----------------------------------------------------------------------


def test_export_range_start_after_range_end_is_400(client: WorkOSClient, world: World) -> None:
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_export(
            organization_id=world.org_id, range_start=RANGE_END, range_end=RANGE_START
        )
    err = info.value
    assert err.status_code == 400
    assert err.code == "invalid_audit_log_export_range_date"
    assert err.request_id
    assert err.message


def test_get_unknown_export_is_404(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.audit_logs.get_export("audit_log_export_01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert info.value.status_code == 404


def test_export_for_unknown_organization_is_404(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.audit_logs.create_export(
            organization_id=MISSING_ORG, range_start=RANGE_START, range_end=RANGE_END
        )
    assert info.value.status_code == 404


# --- Stele extensions (no SDK method: the SDK's generic request_raw) ------------------


def test_jsonl_export_lines_are_the_stored_events(client: WorkOSClient, world: World) -> None:
    """`format: "jsonl"` is a Stele extension the SDK's create_export cannot send."""
    raw = client.request_raw(
        "post", ("audit_logs", "exports"),
        body={"organization_id": world.org_id, "range_start": iso(RANGE_START),
              "range_end": iso(RANGE_END), "actor_ids": [BOB.id, CAROL.id], "format": "jsonl"},
    )
    assert raw["object"] == "audit_log_export"
    ready = wait_until_ready(client, raw["id"])
    got = download(ready.url)
    assert got.status == 200
    lines = got.text.splitlines()
    assert [json.loads(line) for line in lines] == [world.stored[world["e2"].id], world.stored[world["e4"].id]]


def test_search_events_filters(client: WorkOSClient, world: World) -> None:
    """GET /audit_logs/events (Stele extension) with repeated actions / actor_ids."""
    found = search_all(client, world.org_id, actions=[world.update], actor_ids=[ALICE.id, CAROL.id])
    assert [e["id"] for e in found] == [world[n].id for n in ("e1", "e4", "late")]
    e1 = found[0]
    assert e1["sequence"] == 2
    assert e1["organization_id"] == world.org_id
    assert e1["occurred_at"] == "2024-03-01T10:00:00.000Z"
    assert e1["actor"]["name"] == "Alice Liddell"
