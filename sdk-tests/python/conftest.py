"""Shared fixtures for the WorkOS Python SDK (workos 10.x) compatibility suite.

The server is started by the caller; this suite reads STELE_BASE_URL and STELE_API_KEY
(and STELE_ADMIN_PASSWORD to sign in to the dashboard in test_dashboard_snippets.py).
Every suite run is expected to get a fresh server.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

import httpx2
import pytest
from workos import NotFoundError, WorkOSClient
from workos.audit_logs.models import (
    AuditLogSchema,
    AuditLogSchemaActor,
    AuditLogSchemaTarget,
)

CLIENT_ID = "client_stele_test"

# The seed's action and its two schema versions (see shared/seed/workos-audit-logs-versioning.txt).
SEED_ACTION = "user.signed_in"
ACTOR_ROLE_SCHEMA = {"type": "object", "properties": {"role": {"type": "string"}}}
TEAM_OWNER_SCHEMA = {"type": "object", "properties": {"owner": {"type": "string"}}}


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.exit(
            f"{name} is not set: point STELE_BASE_URL / STELE_API_KEY at a running Stele",
            returncode=2,
        )
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("STELE_BASE_URL")


@pytest.fixture(scope="session")
def api_key() -> str:
    return _env("STELE_API_KEY")


@pytest.fixture(scope="session")
def server_reachable(base_url: str) -> None:
    """Fail fast (instead of after the SDK's ~7 s of retries per call) if nothing listens."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        pytest.fail(f"cannot connect to Stele at {base_url}: {e}", pytrace=False)


def _client_kwargs() -> dict[str, Any]:
    retries = os.environ.get("STELE_SDK_MAX_RETRIES")
    return {"max_retries": int(retries)} if retries else {}


@pytest.fixture(scope="session")
def client(base_url: str, api_key: str, server_reachable: None) -> WorkOSClient:
    """The SDK exactly as an application would build it (only base_url changed)."""
    c = WorkOSClient(
        api_key=api_key, client_id=CLIENT_ID, base_url=base_url, **_client_kwargs()
    )
    yield c
    c.close()


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: Optional[Any]
    status: int
    response_headers: dict[str, str]
    response_text: str

    def response_json(self) -> Any:
        return json.loads(self.response_text)


@dataclass
class Recorder:
    """An SDK client whose httpx2 client records every request/response pair."""

    sdk: WorkOSClient
    exchanges: list[Exchange] = field(default_factory=list)

    def last(self) -> Exchange:
        assert self.exchanges, "no HTTP exchange was recorded"
        return self.exchanges[-1]

    def clear(self) -> None:
        self.exchanges.clear()


def make_recorder(base_url: str, api_key: str) -> tuple[Recorder, httpx2.Client]:
    """An SDK client whose caller-supplied httpx2.Client records the traffic.

    Returns the recorder and the httpx2 client (the caller closes it).
    """
    recorder: Recorder

    def on_response(response: httpx2.Response) -> None:
        response.read()
        req = response.request
        body = req.content
        recorder.exchanges.append(
            Exchange(
                method=req.method,
                url=str(req.url),
                request_headers={k.lower(): v for k, v in req.headers.items()},
                request_body=json.loads(body) if body else None,
                status=response.status_code,
                response_headers={k.lower(): v for k, v in response.headers.items()},
                response_text=response.text,
            )
        )

    http = httpx2.Client(
        timeout=30, follow_redirects=True, event_hooks={"response": [on_response]}
    )
    sdk = WorkOSClient(
        api_key=api_key,
        client_id=CLIENT_ID,
        base_url=base_url,
        http_client=http,
        **_client_kwargs(),
    )
    recorder = Recorder(sdk=sdk)
    return recorder, http


@pytest.fixture()
def wire(base_url: str, api_key: str, server_reachable: None) -> Recorder:
    """Same SDK, but with a caller-supplied httpx2.Client that records the traffic.

    Used only where the SDK's return value hides what the server sent (status
    codes, headers, the event id that AuditLogEventCreateResponse drops).
    """
    recorder, http = make_recorder(base_url, api_key)
    yield recorder
    http.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def org(client: WorkOSClient):
    """A fresh organization for one test."""
    return client.organizations.create_organization(name=unique("Stele Py Org"))


@dataclass
class SeedSchemas:
    action: str
    v1: AuditLogSchema
    v2: AuditLogSchema
    v2_again: AuditLogSchema


def seed_v2_definition() -> dict[str, Any]:
    return {
        "targets": [
            AuditLogSchemaTarget(type="team", metadata=TEAM_OWNER_SCHEMA),
            AuditLogSchemaTarget(type="resource"),
        ],
        "actor": AuditLogSchemaActor(metadata=ACTOR_ROLE_SCHEMA),
    }


@pytest.fixture(scope="session")
def seed_schemas(client: WorkOSClient) -> SeedSchemas:
    """The seed's workflow: v1 (targets: team), then v2 (team + resource, actor/team metadata).

    On a fresh server the action is exactly ``user.signed_in``. If the action
    already exists (a re-run against a long-lived server) a suffixed name is
    used so that the version numbers stay 1 and 2.
    """
    action = SEED_ACTION
    try:
        client.audit_logs.list_action_schemas(action)
        action = f"{SEED_ACTION}.{uuid.uuid4().hex[:8]}"
    except NotFoundError:
        pass
    v1 = client.audit_logs.create_schema(
        action, targets=[AuditLogSchemaTarget(type="team")]
    )
    v2 = client.audit_logs.create_schema(action, **seed_v2_definition())
    v2_again = client.audit_logs.create_schema(action, **seed_v2_definition())
    return SeedSchemas(action=action, v1=v1, v2=v2, v2_again=v2_again)
