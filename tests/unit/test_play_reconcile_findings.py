"""What play reconciliation finds (chalicelib.play.reconcile, the pure part)."""

from __future__ import annotations

from chalicelib.play import reconcile as r
from chalicelib.play import stream
from chalicelib.play.settlement import Ratio

RATIOS = (Ratio(1, 5000, 0), Ratio(2, 2000, 10_000))


def entry(msg_id: str, price: int = 1000, num: int = 2, bp: int = 5000, version: int = 1, at_ms: int = 5_000,
          seq: int = 1, **overrides) -> r.EntryRow:
    revenue = price * num
    values = dict(pk="7#2026112210#3", msg_id=msg_id, gift_id=1, gift_num=num, price=price, revenue=revenue,
                  developer_share=revenue * bp // 10_000, share_bp=bp, ratio_version=version, game_id="g", seq=seq,
                  at_ms=at_ms)
    values.update(overrides)
    return r.EntryRow(**values)


def counter_of(*entries: r.EntryRow) -> r.CounterRow:
    return r.CounterRow(len(entries), sum(e.revenue for e in entries), sum(e.developer_share for e in entries),
                        frozenset(e.ratio_version for e in entries))


def test_partition__consistent__nothing():
    entries = [entry("a"), entry("b", at_ms=12_000, bp=2000, version=2)]
    assert r.partition_findings("p", entries, counter_of(*entries), RATIOS) == []


def test_partition__counter_off_by_one_gift__drift_with_both_figures():
    entries = [entry("a"), entry("b")]
    (finding,) = r.partition_findings("p", entries, counter_of(entries[0]), RATIOS)
    assert finding.kind == "play_counter_drift"
    assert finding.details["counter"]["gifts"] == 1 and finding.details["entries"]["gifts"] == 2


def test_partition__entries_without_counter__drift():
    kinds = [f.kind for f in r.partition_findings("p", [entry("a")], None, RATIOS)]
    assert kinds == ["play_counter_drift"]


def test_partition__wrong_share_and_wrong_ratio__each_reported():
    bad_share = entry("a", developer_share=1001)
    old_ratio = entry("b", at_ms=11_000)  # version 1 used after version 2 took effect
    found = r.partition_findings("p", [bad_share, old_ratio], counter_of(bad_share, old_ratio), RATIOS)
    assert sorted((f.kind, f.id) for f in found) == [("play_amount_mismatch", "7#2026112210#3|a"),
                                                     ("play_ratio_mismatch", "7#2026112210#3|b")]


def event(seq: int, msg_id: str, settled: str | None = "7#2026112210#3") -> stream.StreamEvent:
    return stream.StreamEvent(seq=seq, kind="event", cmd="LIVE_OPEN_PLATFORM_SEND_GIFT", data={}, at_ms=0,
                              msg_id=msg_id, settled=settled)


def test_events__entry_and_event_agree__nothing():
    e = entry("a", seq=4)
    assert r.event_findings([e], {("g", 4): event(4, "a")}, [("g", event(4, "a"))]) == []


def test_events__entry_whose_event_is_missing_or_another__reported():
    found = r.event_findings([entry("a", seq=4), entry("b", seq=5)], {("g", 4): None, ("g", 5): event(5, "zzz")}, [])
    assert [(f.kind, f.id) for f in found] == [("play_entry_without_event", "7#2026112210#3|a"),
                                               ("play_entry_without_event", "7#2026112210#3|b")]


def test_events__settled_event_without_entry__reported():
    found = r.event_findings([], {}, [("g", event(9, "lost"))])
    assert [(f.kind, f.id, f.details["msg_id"]) for f in found] == [("play_event_without_entry", "g|9", "lost")]
