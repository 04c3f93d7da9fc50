"""Action schema versioning (the seed's workflow) through `client.audit_logs`."""

from __future__ import annotations

from datetime import datetime

import pytest
from workos import NotFoundError, WorkOSClient
from workos.audit_logs.models import AuditLogAction, AuditLogSchema, AuditLogSchemaTarget

from conftest import ACTOR_ROLE_SCHEMA, TEAM_OWNER_SCHEMA, SeedSchemas, unique


def targets_by_type(schema: AuditLogSchema) -> dict:
    return {t.type: t.metadata for t in schema.targets}


def test_schema_v1_created(seed_schemas: SeedSchemas) -> None:
    v1 = seed_schemas.v1
    assert isinstance(v1, AuditLogSchema)
    assert v1.object == "audit_log_schema"
    assert v1.version == 1
    assert [t.type for t in v1.targets] == ["team"]
    assert v1.targets[0].metadata is None
    assert v1.actor is None
    assert v1.metadata is None
    assert isinstance(v1.created_at, datetime)


def test_schema_v2_created_with_metadata_schemas(seed_schemas: SeedSchemas) -> None:
    v2 = seed_schemas.v2
    assert v2.version == 2
    assert targets_by_type(v2) == {"team": TEAM_OWNER_SCHEMA, "resource": None}
    assert v2.actor is not None
    # returned exactly as submitted (JSON Schema form, never a shorthand)
    assert v2.actor.metadata == ACTOR_ROLE_SCHEMA
    assert v2.created_at >= seed_schemas.v1.created_at


def test_schema_resubmitting_latest_returns_same_version(
    seed_schemas: SeedSchemas,
) -> None:
    again = seed_schemas.v2_again
    assert again.version == 2
    assert targets_by_type(again) == targets_by_type(seed_schemas.v2)
    assert again.created_at == seed_schemas.v2.created_at


def test_schema_resubmit_key_order_ignored_and_status(wire) -> None:
    action = f"doc.{unique('reordered')}"
    a = {"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "number"}}}
    b = {"properties": {"y": {"type": "number"}, "x": {"type": "string"}}, "type": "object"}
    first = wire.sdk.audit_logs.create_schema(
        action, targets=[AuditLogSchemaTarget(type="doc")], metadata=a
    )
    assert wire.last().status == 201
    second = wire.sdk.audit_logs.create_schema(
        action, targets=[AuditLogSchemaTarget(type="doc")], metadata=b
    )
    assert wire.last().status == 200
    assert (first.version, second.version) == (1, 1)
    assert second.metadata == a


def test_list_action_schemas(client: WorkOSClient, seed_schemas: SeedSchemas) -> None:
    page = client.audit_logs.list_action_schemas(seed_schemas.action)
    assert all(isinstance(s, AuditLogSchema) for s in page.data)
    assert [s.version for s in page.data] == [2, 1]  # newest first by default
    asc = client.audit_logs.list_action_schemas(seed_schemas.action, order="asc")
    assert [s.version for s in asc.data] == [1, 2]
    assert asc.after is None


def test_list_action_schemas_paginates(client: WorkOSClient) -> None:
    action = f"page.{unique('schemas')}"
    for i in range(3):
        client.audit_logs.create_schema(
            action, targets=[AuditLogSchemaTarget(type=f"t{i}")]
        )
    page = client.audit_logs.list_action_schemas(action, limit=2)
    assert [s.version for s in page.data] == [3, 2]
    assert page.has_more()
    assert [s.version for s in page.auto_paging_iter()] == [3, 2, 1]


def test_list_action_schemas_unknown_action_404(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.audit_logs.list_action_schemas(f"never.{unique('configured')}")
    assert info.value.status_code == 404


def test_list_actions(client: WorkOSClient, seed_schemas: SeedSchemas) -> None:
    found = [
        a for a in client.audit_logs.list_actions(limit=100).auto_paging_iter()
        if a.name == seed_schemas.action
    ]
    assert len(found) == 1
    action = found[0]
    assert isinstance(action, AuditLogAction)
    assert action.object == "audit_log_action"
    assert action.schema.version == 2  # the latest version
    assert action.schema.actor is not None
    assert action.schema.actor.metadata == ACTOR_ROLE_SCHEMA
    assert action.updated_at >= action.created_at
