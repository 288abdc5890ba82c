"""Which grants of a batch a shard's remaining room can hold (`reservations.fit`, pure)."""

from __future__ import annotations

from chalicelib.rewards.reservations import LEASE_MS, WRITE_MARGIN_MS, Reservation, fit


def test_fit__room_for_some__takes_them_in_order_skipping_what_does_not_fit():
    # GIVEN amounts 5, 9, 3, 2 and room for 10 WHEN fitted THEN 5 and 3 and 2 are taken, 9 is left
    assert fit([5, 9, 3, 2], [0, 1, 2, 3], 10) == [0, 2, 3]


def test_fit__only_the_positions_still_pending__considered():
    # GIVEN position 0 already placed elsewhere WHEN fitted into 9 THEN only 1..3 are candidates
    assert fit([5, 9, 3, 2], [1, 2, 3], 9) == [1]


def test_fit__no_room__nothing():
    assert fit([5, 9], [0, 1], 4) == []


def test_reservation_writable__until_the_margin_before_expiry__not_after():
    # GIVEN a reservation taken at t=0 WHEN asked just before and at the write margin THEN writable, then not
    reservation = Reservation("r", "c", 0, 10, LEASE_MS)
    assert reservation.writable(LEASE_MS - WRITE_MARGIN_MS - 1)
    assert not reservation.writable(LEASE_MS - WRITE_MARGIN_MS)
