"""Running domain calls from a command: domain errors become clean one-line CLI errors."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from rewardgate_ops.errors import one_line

T = TypeVar("T")


def domain_call(call: Callable[[], T]) -> T:
    """Run `call`; a rewardgate error becomes a one-line CLI error (exit 1) naming its code.

    Whatever the domain prints (structured logs, metric lines) goes to stderr: stdout is the command's.
    """
    from chalicelib.errors import RewardgateError

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return call()
    except RewardgateError as error:
        raise click.ClickException(one_line(error) or f"{error.code}: {error.message}") from error


def load_json_file(path: str) -> dict[str, Any]:
    """A JSON object from a file ("-" for stdin)."""
    try:
        with click.open_file(path) as handle:
            value = json.load(handle)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read JSON from {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise click.BadParameter(f"{path} must hold a JSON object")
    return value
