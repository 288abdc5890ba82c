"""The local scheduler: EventBridge rate/cron parsing, next fire times, and firing handlers."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from chalice import Cron, Rate

from rewardgate_ops.scheduler import (
    ScheduledJob,
    UnsupportedSchedule,
    WallClock,
    describe,
    parse_cron,
    parse_rate,
    parse_schedule,
    run_schedule,
)

ANCHOR = datetime(2026, 3, 10, 8, 0, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- rate ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "period"), [
    ("rate(1 minute)", timedelta(minutes=1)),
    ("rate(5 minutes)", timedelta(minutes=5)),
    ("rate(1 hour)", timedelta(hours=1)),
    ("rate(12 hours)", timedelta(hours=12)),
    ("rate(1 day)", timedelta(days=1)),
    ("rate(3 days)", timedelta(days=3)),
])
def test_parse_rate__valid_expression__period(expression, period):
    # GIVEN an EventBridge rate expression / WHEN parsed / THEN its period is the stated one
    assert parse_rate(expression, ANCHOR).period == period


@pytest.mark.parametrize(("rate", "period"), [
    (Rate(1, unit=Rate.MINUTES), timedelta(minutes=1)),
    (Rate(3, unit=Rate.MINUTES), timedelta(minutes=3)),
    (Rate(2, unit=Rate.HOURS), timedelta(hours=2)),
])
def test_parse_schedule__chalice_rate_object__same_period(rate, period):
    # GIVEN the Rate object a `@app.schedule(Rate(...))` carries
    # WHEN parsed THEN it is understood through its own to_string()
    assert parse_schedule(rate, ANCHOR).period == period


@pytest.mark.parametrize(("expression", "fragment"), [
    ("rate(1 minutes)", "rate(1 minute)"),
    ("rate(5 minute)", "rate(5 minutes)"),
    ("rate(0 minutes)", "positive"),
    ("rate(2 weeks)", "minute(s), hour(s) or day(s)"),
    ("rate(five minutes)", "not a rate expression"),
])
def test_parse_rate__invalid_expression__explains(expression, fragment):
    # GIVEN an expression EventBridge would reject / WHEN parsed / THEN the error says why
    with pytest.raises(UnsupportedSchedule) as caught:
        parse_rate(expression, ANCHOR)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("after", "expected"), [
    (ANCHOR, ANCHOR + timedelta(minutes=5)),
    (ANCHOR + timedelta(minutes=12, seconds=30), ANCHOR + timedelta(minutes=15)),
    (ANCHOR + timedelta(minutes=5), ANCHOR + timedelta(minutes=10)),
    (ANCHOR - timedelta(hours=1), ANCHOR + timedelta(minutes=5)),
])
def test_rate_next_after__any_instant__next_period_boundary_strictly_later(after, expected):
    # GIVEN rate(5 minutes) counted from the stack's start / WHEN asked after an instant
    # THEN the next fire is the first anchor + k*period (k >= 1) strictly after it
    assert parse_rate("rate(5 minutes)", ANCHOR).next_after(after) == expected


# --- cron ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("cron(0 12 * * ? *)", "2026-01-01T13:00:00", "2026-01-02T12:00:00"),
    ("cron(0 12 * * ? *)", "2026-01-01T11:59:59", "2026-01-01T12:00:00"),
    ("cron(0 12 * * ? *)", "2026-01-01T12:00:00", "2026-01-02T12:00:00"),
    ("cron(0/15 * * * ? *)", "2026-01-01T10:07:00", "2026-01-01T10:15:00"),
    ("cron(5,35 * * * ? *)", "2026-01-01T10:05:00", "2026-01-01T10:35:00"),
    ("cron(0 9-17/4 * * ? *)", "2026-01-01T14:00:00", "2026-01-01T17:00:00"),
    ("cron(30 1 1 JAN ? 2027)", "2026-06-01T00:00:00", "2027-01-01T01:30:00"),
    ("cron(0 0 29 2 ? *)", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("cron(0 0 31 1 ? *)", "2026-02-01T00:00:00", "2027-01-31T00:00:00"),
    ("cron(15 6 ? JUL WED *)", "2026-01-01T00:00:00", "2026-07-01T06:15:00"),
])
def test_cron_next_after__common_forms__next_matching_minute(expression, after, expected):
    # GIVEN a cron expression in EventBridge's 6-field form / WHEN asked after an instant
    # THEN the next fire time is the first matching minute strictly after it (UTC)
    assert parse_cron(expression).next_after(at(after)) == at(expected)


def test_cron_next_after__weekday_range__skips_the_weekend():
    # GIVEN weekdays at 18:00, asked on a Friday evening
    friday = at("2026-11-20T19:00:00")
    assert friday.weekday() == 4
    # WHEN the next fire time is computed THEN it is Monday 18:00
    due = parse_cron("cron(0 18 ? * MON-FRI *)").next_after(friday)
    assert due == at("2026-11-23T18:00:00")
    assert due.weekday() == 0


def test_cron_next_after__day_of_week_1__is_sunday():
    # GIVEN day-of-week 1, which EventBridge counts as Sunday (not Monday)
    due = parse_cron("cron(0 9 ? * 1 *)").next_after(at("2026-11-20T00:00:00"))
    # THEN the fire time falls on a Sunday
    assert due is not None and due.date() == date(2026, 11, 22) and due.weekday() == 6


def test_cron_next_after__only_past_years__never():
    # GIVEN a cron pinned to a past year / WHEN asked now / THEN it never fires again
    assert parse_cron("cron(0 0 1 1 ? 2020)").next_after(at("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(("expression", "marker"), [
    ("cron(0 12 L * ? *)", "'L'"),
    ("cron(0 12 15W * ? *)", "'W'"),
    ("cron(0 12 ? * 6#3 *)", "'#'"),
    ("cron(0 12 ? * 6L *)", "'L'"),
])
def test_parse_cron__l_w_hash__unsupported_locally_with_reason(expression, marker):
    # GIVEN a cron form valid on AWS that the local scheduler does not implement
    # WHEN parsed THEN the error names the marker and says it works on AWS
    with pytest.raises(UnsupportedSchedule) as caught:
        parse_cron(expression)
    assert marker in str(caught.value)
    assert "not supported by the local scheduler" in str(caught.value)


@pytest.mark.parametrize(("expression", "fragment"), [
    ("cron(0 12 * * ?)", "6 fields"),
    ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week"),
    ("cron(0 12 1 * MON *)", "exactly one of day-of-month and day-of-week"),
    ("cron(? 12 * * ? *)", "only allowed in day-of-month or day-of-week"),
    ("cron(60 12 * * ? *)", "outside 0-59"),
    ("cron(0 12 * FOO ? *)", "not a number or name"),
    ("cron(0 22-2 * * ? *)", "wrap-around"),
    ("every day", "neither rate(...) nor cron(...)"),
])
def test_parse_schedule__invalid_cron__explains(expression, fragment):
    # GIVEN a malformed expression / WHEN parsed / THEN the message says what is wrong
    with pytest.raises(UnsupportedSchedule) as caught:
        parse_schedule(expression, ANCHOR)
    assert fragment in str(caught.value)


def test_parse_schedule__chalice_cron_object__parsed():
    # GIVEN a chalice Cron object / WHEN parsed / THEN its next fire follows its fields
    schedule = parse_schedule(Cron(0, 3, "*", "*", "?", "*"), ANCHOR)
    assert schedule.next_after(at("2026-01-01T04:00:00")) == at("2026-01-02T03:00:00")


def test_describe__unsupported_expression__reason_not_exception():
    # GIVEN an expression the local scheduler cannot run / WHEN described for the start-up table
    line = describe("cron(0 12 L * ? *)", ANCHOR)
    # THEN the line says so instead of raising
    assert line.startswith("NOT RUN LOCALLY:")


def test_describe__rate__expression_and_next_time():
    assert describe(Rate(3, unit=Rate.MINUTES), ANCHOR) == "rate(3 minutes)  next 2026-03-10 08:03:00Z"


# --- firing --------------------------------------------------------------------------------------

class JumpingClock:
    """A clock whose waits return at once, having moved time to the deadline."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, when: datetime, stop: threading.Event) -> bool:
        if stop.is_set():
            return True
        self.current = max(self.current, when)
        return False


def test_run_schedule__rate__fires_handler_at_each_period_with_scheduled_event():
    # GIVEN a rate(2 hours) job and a clock that jumps to each fire time
    clock = JumpingClock(ANCHOR)
    stop = threading.Event()
    fired: list[tuple[datetime, dict, object]] = []

    def handler(event, context):
        fired.append((clock.now(), event, context))
        if len(fired) == 3:
            stop.set()

    # WHEN the scheduler runs
    run_schedule(ScheduledJob("reconcile", "rate(2 hours)", handler), stop, clock)

    # THEN the handler fired at anchor + 2h, + 4h, + 6h with an EventBridge scheduled event
    assert [when for when, _, _ in fired] == [ANCHOR + timedelta(hours=h) for h in (2, 4, 6)]
    event, context = fired[0][1], fired[0][2]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"][0].endswith(":rule/reconcile")
    assert context.function_name == "reconcile"
    assert context.get_remaining_time_in_millis() > 0


def test_run_schedule__handler_raises__keeps_firing_and_logs(caplog):
    # GIVEN a handler that raises on its first invocation
    clock = JumpingClock(ANCHOR)
    stop = threading.Event()
    calls: list[datetime] = []

    def handler(event, context):
        calls.append(clock.now())
        if len(calls) == 1:
            raise RuntimeError("boom")
        stop.set()

    # WHEN the scheduler runs
    with caplog.at_level(logging.ERROR, logger="rewardgate_ops.local"):
        run_schedule(ScheduledJob("sweep", "cron(*/10 * * * ? *)", handler), stop, clock)

    # THEN it fired again at the next time, and the failure was logged with its traceback
    assert calls == [at("2026-03-10T08:10:00"), at("2026-03-10T08:20:00")]
    assert any("sweep" in r.getMessage() and r.exc_info for r in caplog.records)


def test_run_schedule__unsupported_expression__returns_without_firing(caplog):
    # GIVEN a job whose expression the local scheduler cannot run
    fired = []
    with caplog.at_level(logging.WARNING, logger="rewardgate_ops.local"):
        # WHEN it is run THEN it returns at once (a real clock would otherwise block), firing nothing
        run_schedule(ScheduledJob("monthly", "cron(0 0 L * ? *)", lambda e, c: fired.append(e)), threading.Event())
    assert fired == []
    assert any("monthly will not fire locally" in r.getMessage() for r in caplog.records)


def test_wall_clock_sleep_until__deadline__waits_then_false():
    # GIVEN a deadline 0.2 s away / WHEN waited for / THEN the wait lasts about that long and was not stopped
    clock = WallClock()
    started = time.monotonic()
    assert clock.sleep_until(clock.now() + timedelta(seconds=0.2), threading.Event()) is False
    assert 0.15 <= time.monotonic() - started < 1.0


def test_wall_clock_sleep_until__stopped__returns_true_early():
    # GIVEN a far deadline and a stop set from another thread
    clock = WallClock()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    # WHEN waited for THEN the wait ends early and reports the stop
    assert clock.sleep_until(clock.now() + timedelta(hours=1), stop) is True
    assert time.monotonic() - started < 2.0
