"""The security centre's ban rules (chalicelib.play.bans) on a simulated clock."""

from __future__ import annotations

from chalicelib.play import bans

POLICY = bans.BanPolicy(base_s=60, cap_s=24 * 3600, quiet_s=3600)
S = 1000


def test_offend__repeated_right_after_each_ban__doubles_to_the_cap():
    state, now, durations = bans.BanState(), 0, []
    for _ in range(14):
        state = bans.offend(state, now, POLICY)
        durations.append((state.banned_until_ms - now) // S)
        now = state.banned_until_ms + 1  # offends again as soon as the ban ends
    assert durations[:11] == [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720, 61440]
    assert durations[11:] == [86400, 86400, 86400]


def test_banned__until_the_end_of_the_ban_only():
    state = bans.offend(bans.BanState(), 1_000, POLICY)
    assert bans.banned(state, 1_000) and bans.banned(state, 60_999)
    assert not bans.banned(state, 61_000)


def test_remembered_offences__each_quiet_hour_after_the_ban__forgets_one():
    state = bans.BanState()
    for at in (0, 61 * S, 182 * S):  # three offences, each just after the previous ban
        state = bans.offend(state, at, POLICY)
    end = state.banned_until_ms
    assert state.offences == 3
    assert [bans.remembered_offences(state, end + h * 3600 * S, POLICY) for h in (0, 1, 2, 3, 4)] == [3, 2, 1, 0, 0]
    # AND the next offence after two quiet hours bans like a second offence, not a fourth
    later = bans.offend(state, end + 2 * 3600 * S + 5, POLICY)
    assert (later.offences, (later.banned_until_ms - (end + 2 * 3600 * S + 5)) // S) == (2, 120)


def test_offend__after_a_long_quiet_period__starts_over_at_the_base():
    state = bans.offend(bans.BanState(offences=9, banned_until_ms=0, last_offence_ms=0), 30 * 24 * 3600 * S, POLICY)
    assert (state.offences, state.banned_until_ms - 30 * 24 * 3600 * S) == (1, 60 * S)


def test_ban_duration__no_offence__zero_and_huge_counts_capped():
    assert bans.ban_duration_s(0, POLICY) == 0
    assert bans.ban_duration_s(10_000, POLICY) == 86400
