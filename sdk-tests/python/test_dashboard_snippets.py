"""The Python and curl snippets the dashboard shows after a schema is saved run as shown.

Signs in to the dashboard as ``admin`` (STELE_ADMIN_PASSWORD, which the top-level test
script sets), opens the saved version's page, takes the snippets from it, runs the Python
one with this suite's interpreter and SDK and the curl one with bash, and finds the events
they sent through the search API. (The Node suite runs the Node snippet.)
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import httpx2
import pytest
from workos import WorkOSClient
from workos.audit_logs.models import AuditLogSchemaTarget

from conftest import unique


def _signed_in(base_url: str) -> httpx2.Client:
    password = os.environ.get("STELE_ADMIN_PASSWORD", "")
    if not password:
        pytest.fail("STELE_ADMIN_PASSWORD is not set: the dashboard cannot be signed in to")
    browser = httpx2.Client(base_url=base_url, follow_redirects=False, timeout=30)
    login = browser.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert token, login.text
    signed_in = browser.post(
        "/dashboard/login",
        data={
            "csrf_token": token.group(1),
            "next": "/dashboard/actions",
            "username": "admin",
            "password": password,
        },
    )
    assert signed_in.status_code == 303, signed_in.text
    return browser


def _snippet(page: str, language: str) -> str:
    found = re.search(
        rf'<pre class="code-block" data-snippet="{language}">(.*?)</pre>', page, re.S
    )
    assert found, page
    return html.unescape(found.group(1))


def test_the_python_and_curl_snippets_after_saving_a_schema_store_their_events(
    client: WorkOSClient, base_url: str, api_key: str
) -> None:
    organization = client.organizations.create_organization(name=unique("Snippet Org"))
    action = f"snippet.checked_{unique('x').split('-')[1]}"
    client.audit_logs.create_schema(action, targets=[AuditLogSchemaTarget(type="team")])

    browser = _signed_in(base_url)
    try:
        page = browser.get(f"/dashboard/actions/{action}/versions/1")
    finally:
        browser.close()
    assert page.status_code == 200, page.text
    for language, command in [("python", [sys.executable, "-c"]), ("curl", ["bash", "-c"])]:
        snippet = _snippet(page.text, language)
        assert organization.id in snippet, "the snippet names this deployment's organization"
        assert "REPLACE_WITH" not in snippet
        ran = subprocess.run(
            [*command, f"set -e\n{snippet}" if language == "curl" else snippet],
            env={**os.environ, "STELE_API_KEY": api_key},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, f"{snippet}\n--- stderr ---\n{ran.stderr}"

    stored = httpx2.get(
        f"{base_url}/audit_logs/events",
        params={"organization_id": organization.id, "actions": action},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    assert stored.status_code == 200, stored.text
    events = stored.json()["data"]
    assert [event["action"] for event in events] == [action, action], events
