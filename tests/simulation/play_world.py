"""Interactive play in the simulation's world: one play app and its anchor, gifts pushed while the run goes on,
the daily bill closed by the bills job, and the developer's wallet read back (the only file of the play side that
knows rewardgate's shapes)."""

from __future__ import annotations

import random
import uuid
from typing import Any

from tests.simulation.play_model import PlayModel

INTERACTIVE_GIFT = 31039
OTHER_GIFT = 1


class PlayWorld:
    """One play app of the run, driven through the app's routes (the bills job called as its schedule does)."""

    def __init__(self, world: Any, rng: random.Random) -> None:
        from tests.play_support import install_play_key, make_anchor, make_app

        self.world = world
        install_play_key()
        share_bp = rng.choice((2000, 3333, 5000, 7000))
        self.app = make_app(world.client, share_bp=share_bp, gift_ids=(INTERACTIVE_GIFT,))
        self.anchor = make_anchor(world.client)
        self.model = PlayModel(share_bp, frozenset({INTERACTIVE_GIFT}))
        # the platform's bill activity exists (it has been crediting bills since its first day)
        from chalicelib.play import bills
        from chalicelib.play.config import play_settings

        bills.ensure_bill_activity(play_settings().bill_activity)

    @staticmethod
    def internal_activities() -> list[str]:
        """The activities the platform credits bills in."""
        from chalicelib.play.config import play_settings

        return [play_settings().bill_activity, play_settings().sandbox_bill_activity]

    @property
    def wallet_act_id(self) -> str:
        """The act id a developer's bill is credited to, as the settlement API names it (guessable)."""
        return f"play-app-{self.app.app_id}"

    def gifts(self, rng: random.Random) -> int:
        """A viewer sends 1-3 gifts in the anchor's room (some not interactive, some free); returns how many
        the platform appended."""
        from tests.play_support import gift, open_live, post_events

        messages = []
        for _ in range(rng.randint(1, 3)):
            gift_id = INTERACTIVE_GIFT if rng.random() < 0.8 else OTHER_GIFT
            messages.append(gift(gift_id=gift_id, price=rng.choice((100, 1000, 1999, 5200, 52000)),
                                 num=rng.randint(1, 5), paid=rng.random() < 0.9, msg_id=uuid.uuid4().hex))
        started = open_live(self.world.client, self.app).start(self.anchor.code)
        if started["code"] == 7001:
            # the room is cooling down after a game the sweeper ended (RG_PLAY_ROOM_COOLDOWN_S, the platform's
            # documented answer): no game, so these gifts reach no play (soak seed 220 crashed here on 7001)
            return 0
        assert started["code"] == 0, started
        status, body = post_events(self.world.client, self.anchor.room_id, messages)
        if status != 200:
            return 0
        appended = 0
        for message, result in zip(messages, body["results"], strict=True):
            if result["status"] == "appended":
                data = message["data"]
                self.model.record_gift(self.world.now, data["gift_id"], data["price"], data["gift_num"], data["paid"])
                appended += 1
        return appended

    def close_bills(self) -> dict[str, Any]:
        """The bills job, for this app (as the `play_bills` schedule runs it)."""
        from chalicelib.play import bills

        return bills.close_due(app_ids=[self.app.app_id]).body()

    def credited(self) -> tuple[int, list[dict[str, Any]]]:
        """What the developer's wallet holds (balance + pending + withdrawn), and each day's settlement view."""
        views = []
        for day in self.model.days():
            status, body = self.world.call("GET", f"/v1/play-apps/{self.app.app_id}/settlement?day={day}")
            views.append(body if status == 200 else {"status": status, "body": body})
        credit = next((v.get("credit") for v in views if v.get("credit")), None) or {}
        activity = credit.get("activity_id") or self.internal_activities()[0]
        act_id = credit.get("wallet_act_id") or self.wallet_act_id
        status, wallet = self.world.call("GET", f"/v1/wallets/{act_id}?activity_id={activity}")
        if status != 200:
            return -1, views
        return int(wallet["balance"]) + int(wallet["pending"]) + int(wallet.get("total_withdrawn", 0)), views
