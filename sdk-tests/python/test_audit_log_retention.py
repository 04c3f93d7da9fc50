"""Retention and audit log configuration through workos 10.x:
`client.audit_logs.get_organization_audit_logs_retention / update_organization_audit_logs_retention`
and `client.organizations.get_audit_log_configuration`."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from workos import NotFoundError, UnprocessableEntityError, WorkOSClient
from workos.audit_logs._resource import RetentionPeriod, RetentionPeriodInDays
from workos.common.models.audit_log_configuration_state import AuditLogConfigurationState
from workos.common.models.update_audit_logs_retention_retention_period import (
    UpdateAuditLogsRetentionRetentionPeriod as Period,
)
from workos.organizations.models import AuditLogConfiguration
from workos.organizations.models.audit_logs_retention import AuditLogsRetention

from conftest import Recorder

MISSING_ORG = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV"


def retention_path(org_id: str) -> str:
    return f"/organizations/{org_id}/audit_logs_retention"


def test_new_organization_has_no_retention(wire: Recorder, org) -> None:
    got = wire.sdk.audit_logs.get_organization_audit_logs_retention(org.id)
    ex = wire.last()
    assert ex.method == "GET" and urlsplit(ex.url).path == retention_path(org.id)
    assert ex.status == 200
    assert ex.response_json() == {"retention_period_in_days": None}
    assert isinstance(got, AuditLogsRetention)
    assert got.retention_period_in_days is None


def test_set_retention_in_days(wire: Recorder, org) -> None:
    got = wire.sdk.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriodInDays(retention_period_in_days=90)
    )
    ex = wire.last()
    assert ex.method == "PUT" and urlsplit(ex.url).path == retention_path(org.id)
    assert ex.request_body == {"retention_period_in_days": 90}
    assert ex.status == 200, ex.response_text
    assert got.retention_period_in_days == 90
    assert wire.sdk.audit_logs.get_organization_audit_logs_retention(org.id).retention_period_in_days == 90


@pytest.mark.parametrize(
    ("period", "days"),
    [
        (Period.VALUE_1_MONTH, 30),
        (Period.VALUE_11_MONTHS, 330),
        (Period.VALUE_1_YEAR, 365),
        (Period.VALUE_10_YEARS, 3650),
    ],
)
def test_set_retention_period(wire: Recorder, org, period: Period, days: int) -> None:
    got = wire.sdk.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriod(retention_period=period)
    )
    ex = wire.last()
    assert ex.request_body == {"retention_period": period.value}
    assert ex.status == 200, ex.response_text
    assert got.retention_period_in_days == days
    assert wire.sdk.audit_logs.get_organization_audit_logs_retention(org.id).retention_period_in_days == days


def test_clear_retention_with_null(wire: Recorder, org) -> None:
    """RetentionPeriodInDays is typed `int`, but the SDK passes None through as JSON null,
    which Stele reads as "keep forever"."""
    sdk = wire.sdk
    sdk.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriod(retention_period=Period.VALUE_2_YEARS)
    )
    assert sdk.audit_logs.get_organization_audit_logs_retention(org.id).retention_period_in_days == 730
    got = sdk.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriodInDays(retention_period_in_days=None)  # type: ignore[arg-type]
    )
    assert wire.last().request_body == {"retention_period_in_days": None}
    assert got.retention_period_in_days is None
    assert sdk.audit_logs.get_organization_audit_logs_retention(org.id).retention_period_in_days is None


@pytest.mark.parametrize(
    "retention",
    [
        RetentionPeriodInDays(retention_period_in_days=0),
        RetentionPeriodInDays(retention_period_in_days=3651),
        RetentionPeriodInDays(retention_period_in_days=-30),
        RetentionPeriod(retention_period="12_MONTHS"),
        RetentionPeriod(retention_period="11_YEARS"),
        RetentionPeriod(retention_period="forever"),
    ],
    ids=["days-0", "days-3651", "days-negative", "12_MONTHS", "11_YEARS", "forever"],
)
def test_invalid_retention_is_422_and_changes_nothing(client: WorkOSClient, org, retention) -> None:
    client.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriodInDays(retention_period_in_days=60)
    )
    with pytest.raises(UnprocessableEntityError) as info:
        client.audit_logs.update_organization_audit_logs_retention(org.id, retention=retention)
    err = info.value
    assert err.status_code == 422
    assert err.code == "validation_failed"
    assert isinstance(err.errors, list) and err.errors, err.response_json
    assert err.request_id
    assert client.audit_logs.get_organization_audit_logs_retention(org.id).retention_period_in_days == 60


def test_retention_of_unknown_organization_is_404(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError):
        client.audit_logs.get_organization_audit_logs_retention(MISSING_ORG)
    with pytest.raises(NotFoundError):
        client.audit_logs.update_organization_audit_logs_retention(
            MISSING_ORG, retention=RetentionPeriod(retention_period=Period.VALUE_1_YEAR)
        )


# --- audit log configuration ------------------------------------------------------


def test_audit_log_configuration(wire: Recorder, org) -> None:
    sdk = wire.sdk
    config = sdk.organizations.get_audit_log_configuration(org.id)
    ex = wire.last()
    assert ex.method == "GET"
    assert urlsplit(ex.url).path == f"/organizations/{org.id}/audit_log_configuration"
    assert ex.status == 200
    assert ex.response_json() == {
        "organization_id": org.id,
        "retention_period_in_days": 0,
        "state": "active",
    }
    assert isinstance(config, AuditLogConfiguration)
    assert config.organization_id == org.id
    assert config.state == AuditLogConfigurationState.ACTIVE
    assert config.log_stream is None
    # 0: no retention is set, events are kept forever (WorkOS types the field as int).
    assert config.retention_period_in_days == 0

    sdk.audit_logs.update_organization_audit_logs_retention(
        org.id, retention=RetentionPeriod(retention_period=Period.VALUE_3_MONTHS)
    )
    config = sdk.organizations.get_audit_log_configuration(org.id)
    assert config.retention_period_in_days == 90
    assert config.state == AuditLogConfigurationState.ACTIVE


def test_audit_log_configuration_of_unknown_organization_is_404(client: WorkOSClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.organizations.get_audit_log_configuration(MISSING_ORG)
    assert info.value.status_code == 404
