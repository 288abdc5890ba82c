"""The security centre's rules: how long a ban lasts and how offences decay. Pure.

An offence is a second in which an app exceeded an API's rate limit. The n-th offence (counting the
offences still remembered) bans the app for `base * 2^(n-1)`, at most `cap`. Each full `quiet` period
without an offence, counted from the end of the last ban, forgets one offence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BanPolicy:
    """Ban base duration, cap and decay period, in seconds."""

    base_s: int
    cap_s: int
    quiet_s: int


@dataclass(frozen=True)
class BanState:
    """What the security centre remembers about an app."""

    offences: int = 0
    banned_until_ms: int = 0
    last_offence_ms: int = 0


def remembered_offences(state: BanState, now_ms: int, policy: BanPolicy) -> int:
    """Offences still counted at `now_ms` (one forgotten per full quiet period after the last ban ended)."""
    if state.offences <= 0:
        return 0
    quiet_since = max(state.banned_until_ms, state.last_offence_ms)
    if now_ms <= quiet_since:
        return state.offences
    forgotten = (now_ms - quiet_since) // (policy.quiet_s * 1000)
    return max(0, state.offences - int(forgotten))


def ban_duration_s(offences: int, policy: BanPolicy) -> int:
    """How long the `offences`-th remembered offence bans for."""
    if offences <= 0:
        return 0
    # Doubling stops at the cap: no huge powers of two for an app that offends for months.
    duration = policy.base_s
    for _ in range(offences - 1):
        duration *= 2
        if duration >= policy.cap_s:
            return policy.cap_s
    return min(duration, policy.cap_s)


def offend(state: BanState, now_ms: int, policy: BanPolicy) -> BanState:
    """The state after an offence at `now_ms`: one more remembered offence and a ban starting now."""
    offences = remembered_offences(state, now_ms, policy) + 1
    return BanState(offences=offences, banned_until_ms=now_ms + ban_duration_s(offences, policy) * 1000,
                    last_offence_ms=now_ms)


def banned(state: BanState, now_ms: int) -> bool:
    """Whether the app is banned at `now_ms`."""
    return state.banned_until_ms > now_ms
