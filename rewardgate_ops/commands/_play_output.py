"""Output for the interactive-play commands: `--output table|json` on every command, clean one-line errors.

A local stand-in for the shared CLI helper (issue 10): `output_option`, `emit` and `fail` are all a command
uses, so swapping this module for the shared one is a change of import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_option(function: F) -> F:
    """`--output table|json` (json: one machine-readable document on stdout)."""
    return click.option("--output", "output", type=click.Choice(["table", "json"]), default="table",
                        show_default=True, help="table for people, json for scripts (stdout only).")(function)


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    if value is None:
        return "-"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(value: Any, output: str, columns: Sequence[str] | None = None, rows_key: str | None = None) -> None:
    """Print `value`: as JSON, or as a table (of `value[rows_key]` or `[value]`) with `columns`."""
    if output == "json":
        click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
        return
    rows = value[rows_key] if rows_key else [value]
    if columns is None:
        columns = sorted(rows[0]) if rows else []
    click.echo(_table(rows, columns))


def fail(message: str) -> click.ClickException:
    """A one-line error (exit 1), as `raise fail(...)`."""
    return click.ClickException(message)
