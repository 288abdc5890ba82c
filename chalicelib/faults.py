"""Named crash points, for proving that every multi-step flow converges after a crash.

Production code calls `faults.point("credit.after_transaction")` between the steps of a flow; it does
nothing (one dict lookup) unless a test armed that point, in which case it raises `InjectedCrash`,
standing in for a Lambda that dies right there. This is the failpoint technique of FoundationDB and
TiKV: the crash-recovery tests exercise the real code path, not a copy of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_armed: dict[str, int] = {}


class InjectedCrash(BaseException):
    """Raised at an armed crash point. A BaseException, so `except Exception` cleanup cannot swallow it."""


def point(name: str) -> None:
    """Crash here if a test armed `name` (each arming fires a set number of times)."""
    remaining = _armed.get(name)
    if remaining:
        _armed[name] = remaining - 1
        raise InjectedCrash(name)


@contextlib.contextmanager
def armed(name: str, times: int = 1) -> Iterator[None]:
    """Arm crash point `name` for the `with` block (tests only)."""
    _armed[name] = times
    try:
        yield
    finally:
        _armed.pop(name, None)
