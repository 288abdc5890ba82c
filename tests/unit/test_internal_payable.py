"""Which activities' money may be withdrawn (chalicelib.rewards.internal.is_payable): pure, from the settings."""

from __future__ import annotations

import pytest

from chalicelib.rewards.internal import is_payable


@pytest.mark.parametrize(("activity_id", "payable"), [
    ("act1", True),                    # a public activity
    ("play-bills", True),              # the live bill activity: developers' revenue
    ("play-bills-sandbox", False),     # test gifts nobody paid for
    ("rg-internal-credits", False),    # any other internal activity, not marked payable
])
def test_is_payable__activity__only_public_and_live_bills(activity_id, payable):
    assert is_payable(activity_id) is payable
