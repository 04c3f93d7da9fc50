"""Emitting events (the seed's payload), invalid events and idempotency."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest
from workos import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    UnprocessableEntityError,
    WorkOSClient,
)
from workos.audit_logs.models import (
    AuditLogEvent,
    AuditLogEventActor,
    AuditLogEventContext,
    AuditLogEventCreateResponse,
    AuditLogEventTarget,
)

from conftest import CLIENT_ID, SeedSchemas

EVENT_ID = re.compile(r"^audit_log_event_[0-9A-HJKMNP-TV-Z]{26}$")
MISSING_ORG = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV"
UTC = getattr(datetime, "UTC", datetime.timezone.utc)


def seed_event(action: str) -> dict[str, Any]:
    """The seed's Python payload, verbatim (only the action may carry a suffix)."""
    return {
        "action": action,
        "version": 2,  # version provided
        "occurred_at": datetime.datetime.now(tz=UTC).isoformat(),
        "actor": {
            "type": "user",
            "id": "user_01GBNJC3MX9ZZJW1FSTF4C5938",
            "metadata": {
                "role": "admin",
            },
        },
        "targets": [
            {
                "type": "team",
                "id": "team_01GBNJD4MKHVKJGEWK42JNMBGS",
                "metadata": {
                    "owner": "user_01GBTCQ2MZG9C87R7NAQZZS7M6",
                },
            },
        ],
        "context": {
            "location": "123.123.123.123",
            "user_agent": "Chrome/104.0.0.0",
        },
        "metadata": {
            "environment": "staging",
        },
    }


def v1_event(action: str, target_type: str = "team", version: int | None = None) -> AuditLogEvent:
    return AuditLogEvent(
        action=action,
        occurred_at=datetime.datetime.now(tz=UTC),
        actor=AuditLogEventActor(id="user_01GBNJC3MX9ZZJW1FSTF4C5938", type="user"),
        targets=[AuditLogEventTarget(id="team_01GBNJD4MKHVKJGEWK42JNMBGS", type=target_type)],
        context=AuditLogEventContext(location="123.123.123.123"),
        version=version,
    )


# --- emitting -----------------------------------------------------------------


def test_seed_dict_is_not_accepted_by_sdk_10_without_the_model() -> None:
    """SDK fact (no server involved): workos 10.8 calls ``event.to_dict()``, so the
    seed's plain-dict payload raises AttributeError before any request is made.
    Applications must wrap it: ``AuditLogEvent.from_dict(seed_dict)``."""
    c = WorkOSClient(api_key="sk_x", client_id=CLIENT_ID, base_url="http://127.0.0.1:1")
    with pytest.raises(AttributeError, match="to_dict"):
        c.audit_logs.create_event(organization_id=MISSING_ORG, event=seed_event("x"))  # type: ignore[arg-type]
    c.close()


def test_emit_seed_payload_v2(wire, org, seed_schemas: SeedSchemas) -> None:
    event = AuditLogEvent.from_dict(seed_event(seed_schemas.action))
    resp = wire.sdk.audit_logs.create_event(organization_id=org.id, event=event)
    assert isinstance(resp, AuditLogEventCreateResponse)
    assert resp.success is True

    ex = wire.last()
    assert ex.method == "POST" and ex.url.endswith("/audit_logs/events")
    assert ex.request_headers.get("idempotency-key"), "SDK sends Idempotency-Key on every POST"
    sent = ex.request_body
    assert sent["organization_id"] == org.id
    assert sent["event"]["version"] == 2
    # the SDK reformats occurred_at to milliseconds + Z
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", sent["event"]["occurred_at"])
    assert ex.status == 200  # WorkOS's spec answers 200
    body = ex.response_json()
    assert body["success"] is True
    assert EVENT_ID.match(body["id"]), body  # Stele returns the id; the SDK model drops it


def test_emit_seed_payload_verbatim_isoformat(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    """Raw SDK http client (client.request_raw): sends the seed's occurred_at string
    unchanged (``+00:00`` offset, 6 fractional digits), as Python 5 / Go 10 / Ruby do."""
    payload = seed_event(seed_schemas.action)
    assert payload["occurred_at"].endswith("+00:00")
    body = client.request_raw(
        "post", ("audit_logs", "events"), body={"organization_id": org.id, "event": payload}
    )
    assert body.get("success") is True
    assert EVENT_ID.match(body.get("id", "")), body


def test_emit_v1_event_version_omitted(wire, org, seed_schemas: SeedSchemas) -> None:
    resp = wire.sdk.audit_logs.create_event(
        organization_id=org.id, event=v1_event(seed_schemas.action)
    )
    assert resp.success is True
    ex = wire.last()
    assert "version" not in ex.request_body["event"]  # SDK omits None fields
    assert ex.status == 200
    assert EVENT_ID.match(ex.response_json()["id"])


def test_emit_v2_event_with_resource_target(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    event = v1_event(seed_schemas.action, version=2)
    event.targets.append(AuditLogEventTarget(id="resource_01GBTAX2J37BAMB2D8GYDR2CC6", type="resource"))
    assert client.audit_logs.create_event(organization_id=org.id, event=event).success is True


# --- invalid events -----------------------------------------------------------


def test_v1_event_with_undeclared_target_type_is_400(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_event(
            organization_id=org.id, event=v1_event(seed_schemas.action, target_type="resource")
        )
    err = info.value
    assert err.status_code == 400
    assert err.code == "invalid_audit_log_event"
    assert isinstance(err.errors, list) and err.errors, err.response_json
    assert any(str(e.get("instancePath", "")).startswith("/targets") for e in err.errors), err.errors


def test_actor_metadata_violating_v2_schema_is_400(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    payload = seed_event(seed_schemas.action)
    payload["actor"]["metadata"]["role"] = 123  # schema says string
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_event(organization_id=org.id, event=AuditLogEvent.from_dict(payload))
    err = info.value
    assert err.code == "invalid_audit_log_event"
    assert any(e.get("instancePath") == "/actor/metadata/role" for e in err.errors), err.errors


def test_nonexistent_version_is_400(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_event(
            organization_id=org.id, event=v1_event(seed_schemas.action, version=99)
        )
    assert info.value.status_code == 400
    assert info.value.code == "invalid_audit_log_event"


def test_unconfigured_action_is_400(client: WorkOSClient, org) -> None:
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_event(
            organization_id=org.id, event=v1_event(f"unconfigured.{uuid.uuid4().hex[:8]}")
        )
    assert info.value.code == "invalid_audit_log_event"


def test_unknown_organization_is_404(client: WorkOSClient, seed_schemas: SeedSchemas) -> None:
    with pytest.raises(NotFoundError) as info:
        client.audit_logs.create_event(organization_id=MISSING_ORG, event=v1_event(seed_schemas.action))
    assert info.value.status_code == 404


def test_malformed_event_is_422(client: WorkOSClient, org) -> None:
    """Raw SDK http client: the typed model cannot omit required fields."""
    with pytest.raises(UnprocessableEntityError) as info:
        client.request_raw(
            "post", ("audit_logs", "events"),
            body={"organization_id": org.id, "event": {"occurred_at": "2022-09-08T19:46:03.435Z"}},
        )
    err = info.value
    assert err.status_code == 422
    assert err.code == "validation_failed"
    assert any(e.get("field") == "event.action" for e in err.errors), err.errors


def test_bad_api_key_on_create_event_is_401(base_url: str, server_reachable, seed_schemas: SeedSchemas) -> None:
    bad = WorkOSClient(api_key="sk_test_wrong", client_id=CLIENT_ID, base_url=base_url)
    try:
        with pytest.raises(AuthenticationError) as info:
            bad.audit_logs.create_event(organization_id=MISSING_ORG, event=v1_event(seed_schemas.action))
        assert info.value.status_code == 401
    finally:
        bad.close()


# --- idempotency --------------------------------------------------------------


def test_idempotent_replay_returns_same_response(wire, org, seed_schemas: SeedSchemas) -> None:
    key = str(uuid.uuid4())
    event = v1_event(seed_schemas.action)
    r1 = wire.sdk.audit_logs.create_event(organization_id=org.id, event=event, idempotency_key=key)
    first = wire.last()
    r2 = wire.sdk.audit_logs.create_event(organization_id=org.id, event=event, idempotency_key=key)
    second = wire.last()
    assert r1.success is True and r2.success is True
    assert first.request_headers["idempotency-key"] == key == second.request_headers["idempotency-key"]
    assert first.request_body == second.request_body
    assert second.status == first.status == 200
    id1, id2 = first.response_json()["id"], second.response_json()["id"]
    assert EVENT_ID.match(id1)
    assert id1 == id2, "a replay must return the first response, not store a second event"


def test_different_keys_create_different_events(wire, org, seed_schemas: SeedSchemas) -> None:
    event = v1_event(seed_schemas.action)
    wire.sdk.audit_logs.create_event(organization_id=org.id, event=event, idempotency_key=str(uuid.uuid4()))
    id1 = wire.last().response_json()["id"]
    wire.sdk.audit_logs.create_event(organization_id=org.id, event=event, idempotency_key=str(uuid.uuid4()))
    id2 = wire.last().response_json()["id"]
    assert id1 != id2


def test_idempotency_key_reused_with_different_event_is_400(client: WorkOSClient, org, seed_schemas: SeedSchemas) -> None:
    key = str(uuid.uuid4())
    client.audit_logs.create_event(organization_id=org.id, event=v1_event(seed_schemas.action), idempotency_key=key)
    other = v1_event(seed_schemas.action)
    other.actor = AuditLogEventActor(id="user_someone_else", type="user")
    with pytest.raises(BadRequestError) as info:
        client.audit_logs.create_event(organization_id=org.id, event=other, idempotency_key=key)
    assert info.value.status_code == 400
    assert info.value.code == "idempotency_key_reused"


# --- organizations with history -------------------------------------------------


def test_delete_organization_with_events_deletes_them(client: WorkOSClient, wire, seed_schemas: SeedSchemas) -> None:
    """As WorkOS: deleting an organization deletes its events with it (api.md, "Deleting an
    organization"); its events stop being searchable and new ones are 404."""
    org = client.organizations.create_organization(name=f"py-sdk delete-with-events {uuid.uuid4().hex[:8]}")
    for _ in range(2):
        client.audit_logs.create_event(organization_id=org.id, event=v1_event(seed_schemas.action))
    assert wire.sdk.organizations.delete_organization(org.id) is None
    ex = wire.last()
    assert ex.method == "DELETE" and ex.status == 200, (ex.status, ex.response_text)
    assert ex.response_json()["purged_events"] == 2
    with pytest.raises(NotFoundError):
        client.organizations.get_organization(org.id)
    with pytest.raises(NotFoundError):
        client.audit_logs.create_event(organization_id=org.id, event=v1_event(seed_schemas.action))
