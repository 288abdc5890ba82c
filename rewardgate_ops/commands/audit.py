"""`rewardgate audit --since 2h`: who changed what (admin changes, withdrawals), with the caller's ARN."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, rich_table

_AGO = re.compile(r"([0-9]{1,6})([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_when(text: str, now_ms: int) -> int:
    """`30m`, `2h`, `7d` ago; an ISO-8601 time (UTC unless it has an offset); or epoch milliseconds."""
    ago = _AGO.fullmatch(text)
    if ago:
        return now_ms - int(ago.group(1)) * _UNIT_MS[ago.group(2)]
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: give 30m, 2h, 7d, an ISO-8601 time or epoch ms") from exc
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


@click.command("audit")
@click.option("--since", required=True, help="From when: 30m, 2h, 7d, an ISO-8601 time or epoch ms.")
@click.option("--until", default=None, help="Until when (default: now), same forms.")
@click.option("--action", default=None, help="Only this action, e.g. switch.put, withdrawal.create.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@output_option
@pass_cli
def command(cli: CliContext, since: str, until: str | None, action: str | None, limit: int, output: str) -> None:
    """Admin changes and withdrawals in a time range, oldest first, with who made them (caller ARN)."""
    cli.target()
    from chalicelib import clock
    from chalicelib.audit import log as audit_log

    now = clock.now_ms()
    since_ms = parse_when(since, now)
    until_ms = parse_when(until, now) if until else None
    entries = domain_call(lambda: list(audit_log.entries(since_ms, until_ms, action, limit)))
    rows = [(_iso(e["at_ms"]), e["action"], e["caller_arn"], e["target"], e["status"], e["request_id"])
            for e in entries]
    emit(output, entries, lambda _d: rich_table(("at (UTC)", "action", "caller", "target", "status", "request"),
                                                rows, f"audit since {_iso(since_ms)}"))
