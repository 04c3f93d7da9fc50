"""Admin Portal through the WorkOS Python SDK: admin_portal.generate_link and
admin_portal.revoke_link against Stele, with the links followed like a browser would."""

from __future__ import annotations

import httpx2
import pytest
from workos import NotFoundError, UnprocessableEntityError, WorkOSClient

MISSING_ORG_ID = "org_01H0000000000000000000000Z"


def open_link(link: str) -> httpx2.Response:
    """Follows a link without following its redirect, like the first hop of a browser."""
    with httpx2.Client(follow_redirects=False) as browser:
        return browser.get(link)


def portal_cookie(response: httpx2.Response) -> str:
    header = response.headers["set-cookie"]
    name, _, rest = header.partition("=")
    assert name == "stele_portal", header
    return rest.split(";", 1)[0]


def events_page(base_url: str, token: str) -> httpx2.Response:
    with httpx2.Client(follow_redirects=False) as browser:
        return browser.get(
            f"{base_url}/portal/events", headers={"cookie": f"stele_portal={token}"}
        )


def test_generate_link_opens_the_audit_log_portal_once(
    client: WorkOSClient, org, base_url: str
) -> None:
    response = client.admin_portal.generate_link(
        organization=org.id,
        intent="audit_logs",
        return_url="https://app.example.com/settings",
        success_url="https://app.example.com/done",
        external_user_id="admin_py_1",
        it_contact_emails=["it@example.com"],
    )
    link = str(response.link)
    assert link.startswith(f"{base_url}/portal/launch?secret="), link
    first = open_link(link)
    assert first.status_code == 303
    assert first.headers["location"] == "/portal/events"
    token = portal_cookie(first)
    page = events_page(base_url, token)
    assert page.status_code == 200
    assert org.name in page.text
    assert "Back to app.example.com" in page.text
    assert open_link(link).status_code == 403, "a link works once"


def test_generate_link_serves_log_streams_and_refuses_other_intents(
    client: WorkOSClient, org
) -> None:
    link = str(client.admin_portal.generate_link(organization=org.id, intent="log_streams").link)
    assert open_link(link).headers["location"] == "/portal/log-streams"
    with pytest.raises(UnprocessableEntityError) as refused:
        client.admin_portal.generate_link(organization=org.id, intent="sso")
    assert "audit_logs, log_streams" in str(refused.value)


def test_generate_link_for_an_unknown_organization_is_not_found(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError):
        client.admin_portal.generate_link(organization=MISSING_ORG_ID, intent="audit_logs")


def test_revoke_link_ends_open_sessions_and_unopened_links(
    client: WorkOSClient, org, base_url: str
) -> None:
    opened = str(
        client.admin_portal.generate_link(
            organization=org.id, intent="audit_logs", external_user_id="admin_py_2"
        ).link
    )
    unopened = str(
        client.admin_portal.generate_link(
            organization=org.id, intent="audit_logs", external_user_id="admin_py_2"
        ).link
    )
    other = str(
        client.admin_portal.generate_link(
            organization=org.id, intent="audit_logs", external_user_id="admin_py_3"
        ).link
    )
    token = portal_cookie(open_link(opened))
    other_token = portal_cookie(open_link(other))
    assert events_page(base_url, token).status_code == 200

    assert client.admin_portal.revoke_link(organization=org.id, external_user_id="admin_py_2") is None

    assert events_page(base_url, token).status_code == 401, "the open session ended"
    assert open_link(unopened).status_code == 403, "the unopened link stopped working"
    assert events_page(base_url, other_token).status_code == 200, "another admin keeps access"


def test_revoke_link_for_an_unknown_organization_is_not_found(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError):
        client.admin_portal.revoke_link(organization=MISSING_ORG_ID, external_user_id="admin")
