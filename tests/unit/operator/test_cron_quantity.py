"""Cron schedules, quantities and retention: the small pure helpers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from velocity_operator import cron
from velocity_operator.controllers.schedule import retention_victims
from velocity_operator.quantity import QuantityError, parse_quantity


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_hourly_fires_on_the_hour() -> None:
    s = cron.parse("0 * * * *")
    assert s.matches(_t("2026-03-01T05:00"))
    assert not s.matches(_t("2026-03-01T05:01"))
    assert s.due_between(_t("2026-03-01T04:30"), _t("2026-03-01T05:10")) == _t("2026-03-01T05:00")
    assert s.due_between(_t("2026-03-01T05:00"), _t("2026-03-01T05:59")) is None


def test_shortcuts_steps_ranges_and_lists() -> None:
    assert cron.parse("@daily") == cron.parse("0 0 * * *")
    s = cron.parse("*/15 9-17 * * 1-5")
    assert s.matches(_t("2026-03-02T09:45"))  # a Monday
    assert not s.matches(_t("2026-03-01T09:45"))  # a Sunday
    assert cron.parse("0 0 * * 7").matches(_t("2026-03-01T00:00"))  # 7 is Sunday too
    assert cron.parse("5,35 * * * *").minutes == frozenset({5, 35})


def test_day_fields_or_when_both_restricted() -> None:
    s = cron.parse("0 0 1 * 1")
    assert s.matches(_t("2026-03-01T00:00"))  # the 1st (a Sunday)
    assert s.matches(_t("2026-03-02T00:00"))  # a Monday


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "a * * * *", "*/0 * * * *", "5-1 * * * *"])
def test_bad_expressions_raise(bad: str) -> None:
    with pytest.raises(cron.CronError):
        cron.parse(bad)


def test_quantities() -> None:
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("500M") == 500 * 10**6
    assert parse_quantity("100m") == Decimal("0.1")
    assert parse_quantity(3) == 3
    assert parse_quantity("2Gi") > parse_quantity("2G")
    with pytest.raises(QuantityError):
        parse_quantity("1 gig")


def _b(name: str, created: str, phase: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"phase": phase} if phase else {}}


def test_retention_keeps_the_newest_completed() -> None:
    backups = [
        _b("b1", "2026-01-01T01:00:00Z", "Completed"),
        _b("b2", "2026-01-01T02:00:00Z", "Failed"),
        _b("b3", "2026-01-01T03:00:00Z", "Completed"),
        _b("b4", "2026-01-01T04:00:00Z", "Completed"),
        _b("b5", "2026-01-01T05:00:00Z", None),  # running: never deleted
    ]
    assert sorted(retention_victims(backups, 2)) == ["b1", "b2"]
    assert retention_victims(backups, 3) == []
