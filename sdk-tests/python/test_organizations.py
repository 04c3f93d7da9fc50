"""Organizations through workos 10.x `client.organizations`."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
from workos import AuthenticationError, NotFoundError, WorkOSClient
from workos.organizations.models import Organization

from conftest import CLIENT_ID, unique

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
ORG_ID = re.compile(rf"^org_{ULID}$")
DOMAIN_ID = re.compile(rf"^org_domain_{ULID}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MISSING_ORG = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV"


def assert_utc(ts: datetime) -> None:
    assert isinstance(ts, datetime)
    assert ts.utcoffset() == timedelta(0)


def test_create_organization(client: WorkOSClient) -> None:
    name = unique("Acme")
    domain = f"{unique('acme')}.example.com"
    external_id = unique("ext")
    org = client.organizations.create_organization(
        name=name, domains=[domain], external_id=external_id, metadata={"tier": "gold"}
    )
    assert isinstance(org, Organization)
    assert org.object == "organization"
    assert ORG_ID.match(org.id), org.id
    assert org.name == name
    assert isinstance(org.domains, list)
    assert [d.domain for d in org.domains] == [domain]
    for d in org.domains:
        assert DOMAIN_ID.match(d.id), d.id
        assert d.organization_id == org.id
        assert_utc(d.created_at)
    assert org.external_id == external_id
    assert org.metadata == {"tier": "gold"}
    assert_utc(org.created_at)
    assert_utc(org.updated_at)


def test_create_organization_minimal_has_null_external_id_and_empty_domains(
    wire,
) -> None:
    org = wire.sdk.organizations.create_organization(name=unique("Minimal"))
    assert org.external_id is None
    assert org.domains == []
    assert org.metadata == {}
    ex = wire.last()
    assert ex.method == "POST" and ex.url.endswith("/organizations")
    # Python 10 sends a bare UUID Idempotency-Key on every POST.
    assert re.match(r"^[0-9a-f-]{36}$", ex.request_headers["idempotency-key"])
    assert ex.status == 201
    raw = ex.response_json()
    assert "external_id" in raw and raw["external_id"] is None
    assert TIMESTAMP.match(raw["created_at"]), raw["created_at"]
    assert TIMESTAMP.match(raw["updated_at"]), raw["updated_at"]


def test_get_organization(client: WorkOSClient) -> None:
    created = client.organizations.create_organization(
        name=unique("Get"), external_id=unique("ext")
    )
    got = client.organizations.get_organization(created.id)
    assert isinstance(got, Organization)
    assert got.id == created.id
    assert got.name == created.name
    assert got.external_id == created.external_id
    assert got.created_at == created.created_at


def test_list_organizations_paginates(client: WorkOSClient) -> None:
    prefix = unique("ListPage")
    ids = []
    for i in range(3):
        ids.append(
            client.organizations.create_organization(name=f"{prefix} {i}").id
        )
        time.sleep(0.01)  # distinct created_at, so the order is well defined

    page = client.organizations.list_organizations(limit=2, search=prefix)
    assert len(page.data) == 2
    assert all(isinstance(o, Organization) for o in page.data)
    # desc (the SDK's default order) = newest first
    assert [o.id for o in page.data] == [ids[2], ids[1]]
    assert page.has_more(), "list_metadata.after must be set when more remain"

    walked = [o.id for o in page.auto_paging_iter()]
    assert walked == [ids[2], ids[1], ids[0]]

    asc = client.organizations.list_organizations(limit=10, search=prefix, order="asc")
    assert [o.id for o in asc.data] == ids
    assert asc.after is None


def test_list_organizations_search_filters_by_name(client: WorkOSClient) -> None:
    prefix = unique("Searchable")
    mine = client.organizations.create_organization(name=f"{prefix} only").id
    client.organizations.create_organization(name=unique("Other"))
    page = client.organizations.list_organizations(search=prefix)
    assert [o.id for o in page.data] == [mine]


def test_update_organization(client: WorkOSClient) -> None:
    created = client.organizations.create_organization(name=unique("Before"))
    time.sleep(0.01)
    new_name = unique("After")
    new_ext = unique("ext")
    updated = client.organizations.update_organization(
        created.id, name=new_name, external_id=new_ext
    )
    assert updated.id == created.id
    assert updated.name == new_name
    assert updated.external_id == new_ext
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    again = client.organizations.get_organization(created.id)
    assert again.name == new_name
    assert again.external_id == new_ext


def test_update_organization_is_partial_one_field_at_a_time(wire) -> None:
    sdk = wire.sdk
    ext = unique("ext-partial")
    name = unique("Partial")
    created = sdk.organizations.create_organization(
        name=name, external_id=ext, metadata={"tier": "gold"}
    )

    updated = sdk.organizations.update_organization(created.id, metadata={"tier": "platinum"})
    assert wire.last().request_body == {"metadata": {"tier": "platinum"}}, "only the field given is sent"
    assert (updated.name, updated.external_id, updated.metadata) == (name, ext, {"tier": "platinum"})

    updated = sdk.organizations.update_organization(created.id, name=name + " renamed")
    assert (updated.name, updated.external_id, updated.metadata) == (
        name + " renamed",
        ext,
        {"tier": "platinum"},
    )

    updated = sdk.organizations.update_organization(created.id, external_id=ext + "-new")
    assert (updated.name, updated.external_id, updated.metadata) == (
        name + " renamed",
        ext + "-new",
        {"tier": "platinum"},
    )

    # An explicit None is sent as null and clears the field.
    updated = sdk.organizations.update_organization(created.id, external_id=None)
    assert wire.last().request_body == {"external_id": None}
    assert updated.external_id is None
    assert updated.metadata == {"tier": "platinum"}
    updated = sdk.organizations.update_organization(created.id, metadata=None)
    assert updated.metadata == {}
    assert updated.name == name + " renamed"


def test_stripe_customer_id_is_stored_and_returned(wire) -> None:
    sdk = wire.sdk
    created = sdk.organizations.create_organization(name=unique("Billing"))
    assert created.stripe_customer_id is None
    assert "stripe_customer_id" not in wire.last().response_json(), "absent until set, as WorkOS"
    updated = sdk.organizations.update_organization(created.id, stripe_customer_id="cus_py_sdk")
    assert wire.last().request_body == {"stripe_customer_id": "cus_py_sdk"}
    assert updated.stripe_customer_id == "cus_py_sdk"
    assert sdk.organizations.get_organization(created.id).stripe_customer_id == "cus_py_sdk"
    listed = sdk.organizations.list_organizations(search=created.name)
    assert any(o.id == created.id and o.stripe_customer_id == "cus_py_sdk" for o in listed.data)


def test_get_organization_by_external_id(client: WorkOSClient) -> None:
    ext = unique("ext-lookup")
    created = client.organizations.create_organization(name=unique("Ext"), external_id=ext)
    got = client.organizations.get_organization_by_external_id(ext)
    assert got.id == created.id
    assert got.external_id == ext
    with pytest.raises(NotFoundError):
        client.organizations.get_organization_by_external_id(unique("no-such-ext"))


def test_delete_organization(client: WorkOSClient, wire) -> None:
    created = client.organizations.create_organization(name=unique("Doomed"))
    result = wire.sdk.organizations.delete_organization(created.id)
    assert result is None
    ex = wire.last()
    assert ex.method == "DELETE"
    assert ex.status == 200, (ex.status, ex.response_text)  # WorkOS's spec: 200
    assert ex.response_json() == {"object": "organization", "id": created.id, "deleted": True, "purged_events": 0}
    with pytest.raises(NotFoundError) as info:
        client.organizations.get_organization(created.id)
    assert info.value.status_code == 404


def test_unknown_organization_is_typed_404_with_json_and_request_id(wire) -> None:
    with pytest.raises(NotFoundError) as info:
        wire.sdk.organizations.get_organization(MISSING_ORG)
    err = info.value
    assert err.status_code == 404
    assert err.code == "not_found"
    assert err.request_id, "X-Request-ID header is read into the error"
    assert isinstance(err.response_json, dict) and err.response_json.get("message")
    ex = wire.last()
    assert ex.response_headers["content-type"].startswith("application/json")


def test_request_id_is_echoed(wire) -> None:
    rid = unique("req")
    wire.sdk.organizations.list_organizations(
        limit=1, request_options={"extra_headers": {"X-Request-ID": rid}}
    )
    ex = wire.last()
    assert ex.status == 200
    assert ex.response_headers.get("x-request-id") == rid
    body = ex.response_json()
    assert body["object"] == "list"
    assert set(body["list_metadata"]) >= {"before", "after"}


def test_bad_api_key_is_authentication_error(base_url: str, server_reachable) -> None:
    bad = WorkOSClient(api_key="sk_test_not_a_key", client_id=CLIENT_ID, base_url=base_url)
    try:
        with pytest.raises(AuthenticationError) as info:
            bad.organizations.list_organizations()
        assert info.value.status_code == 401
    finally:
        bad.close()
