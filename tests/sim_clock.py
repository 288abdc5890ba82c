"""Clocks under the test's control: a `time.monotonic` stand-in and a settable `clock.now_ms`."""

from __future__ import annotations

import threading


class SimClock:
    """A thread-safe monotonic clock under the test's control; `sleep` advances it instead of waiting."""

    def __init__(self, start_s: float = 1_000.0) -> None:
        self.now = start_s
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class FakeClock:
    """A settable stand-in for `chalicelib.clock.now_ms` (milliseconds since the epoch)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms
