"""`rewardgate play ...` (identity codes, the master key, settlement, bills) and `rewardgate simulate live-event`
(the developer debug tool: complete, valid live messages, marked `test`, for sandbox apps' games)."""

from __future__ import annotations

import json
import urllib.error
import uuid
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands import simulate as simulate_module
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, progress, rich_table, write_options

MAX_ID = 2**53 - 1
HELD = 3  # `play close-bills` exit status when a day is held by a reconciliation finding
CMDS = {
    "dm": "LIVE_OPEN_PLATFORM_DM", "gift": "LIVE_OPEN_PLATFORM_SEND_GIFT", "guard": "LIVE_OPEN_PLATFORM_GUARD",
    "super-chat": "LIVE_OPEN_PLATFORM_SUPER_CHAT", "super-chat-del": "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL",
    "like": "LIVE_OPEN_PLATFORM_LIKE",
}


@click.group("play")
def command() -> None:
    """Interactive play: identity codes, the play master key, settlement, bills, and following a game's push."""


@command.command("code")
@click.option("--anchor-id", type=click.IntRange(1, MAX_ID), required=True, help="The streamer's uid.")
@click.option("--room-id", type=click.IntRange(1, MAX_ID), default=None,
              help="The streamer's room (required the first time; the code is bound to it).")
@click.option("--uname", default=None, help="The streamer's display name (shown to plays as anchor_info.uname).")
@click.option("--refresh", is_flag=True, help="Issue a new code; the old one stops working at once.")
@write_options
@output_option
@pass_cli
def code(cli: CliContext, anchor_id: int, room_id: int | None, uname: str | None, refresh: bool, yes: bool,
         dry_run: bool, output: str) -> None:
    """Show (or create, or refresh) a streamer's identity code."""
    cli.target()
    from chalicelib.edge.fields import validated
    from chalicelib.play import anchors
    from chalicelib.play.models import CodeRequest

    if refresh:
        if not cli.confirm(f"replace the identity code of anchor {anchor_id} (the old one stops working)", yes,
                           dry_run):
            emit(output, {"dry_run": True, "anchor_id": anchor_id, "refresh": True})
            return
        cli.audit("anchor_code.refresh", {"anchor_id": anchor_id})
        view = domain_call(lambda: anchors.refresh_code(anchor_id))
    elif room_id is None:
        view = domain_call(lambda: anchors.get_code(anchor_id))
    else:
        body = domain_call(lambda: validated(CodeRequest, {"room_id": room_id, "uname": uname}))
        view = domain_call(lambda: anchors.issue_code(anchor_id, body.room_id, body.uname))
    emit(output, view.model_dump(), title="identity code")


@command.command("init-key")
@write_options
@output_option
@pass_cli
def init_key(cli: CliContext, yes: bool, dry_run: bool, output: str) -> None:
    """Create interactive play's master key in Secrets Manager (once per stage; refuses if it exists)."""
    cli.target()
    from chalicelib.play.config import play_settings
    from chalicelib.play.keys import new_master_secret
    from chalicelib.secrets import forget, get_secret_json, put_secret_json

    name = play_settings().key_secret
    forget(name)
    if get_secret_json(name) is not None:
        raise click.ClickException(f"{name} already holds the play master key; it is never replaced (every "
                                   "identity code derives from it)")
    if not cli.confirm(f"create the play master key in {name}", yes, dry_run):
        emit(output, {"dry_run": True, "secret": name})
        return
    cli.audit("play.init_key", {"secret": name})
    put_secret_json(name, new_master_secret())
    emit(output, {"secret": name, "created": True}, title="play master key")


@command.command("settlement")
@click.option("--app-id", type=click.IntRange(1, MAX_ID), required=True, help="The play app.")
@click.option("--day", default=None, help="A UTC+8 day, YYYY-MM-DD (default: today in UTC+8).")
@output_option
@pass_cli
def settlement_cmd(cli: CliContext, app_id: int, day: str | None, output: str) -> None:
    """A day's settlement: gifts, revenue and developer share (1 000 = ¥1), closed or running."""
    cli.target()
    from chalicelib import clock
    from chalicelib.edge.fields import validated
    from chalicelib.play import bills, settlement
    from chalicelib.play.models import SettlementQuery

    chosen = day or settlement.day_of(clock.now_ms())
    query = domain_call(lambda: validated(SettlementQuery, {"day": chosen}))
    view = domain_call(lambda: bills.settlement_view(app_id, query.day))
    emit(output, view.model_dump(), title=f"play app {app_id} settlement of {query.day} (UTC+8)")


@command.command("close-bills")
@write_options
@output_option
@pass_cli
def close_bills(cli: CliContext, yes: bool, dry_run: bool, output: str) -> None:
    """Run the bills job now: close every day due (00:30 UTC+8 the next day) and place pending credits.

    Exit status 3 when a day is held (a reconciliation finding stops its bill; see README "Settlement").
    """
    cli.target()
    from chalicelib.play import apps, bills

    if not cli.confirm("close the due play bills and place their credits", yes, dry_run):
        emit(output, {"dry_run": True})
        return
    cli.audit("play.close_bills", {})
    total = len(domain_call(apps.list_apps))
    with progress(output, total, "closing play bills") as advance:
        report = domain_call(lambda: bills.close_due(on_app=lambda: advance(1))).body()
    emit(output, report, lambda r: rich_table(
        ("closed", "held", "credited", "credit failed"),
        [(len(r["closed"]), len(r["held"]), len(r["credited"]), len(r["credit_failed"]))], "play bills"))
    if report["held"]:
        click.echo(f"held (reconciliation findings): {', '.join(report['held'])}", err=True)
        raise SystemExit(HELD)


@command.command("watch")
@click.option("--auth-body", required=True, help="The game's auth_body, from the play's /v2/app/start answer.")
@click.option("--url", default=None,
              help="The wss_link from the same answer (default: the running local stack's WebSocket API).")
@click.option("--resume-after", type=click.IntRange(0, MAX_ID), default=None,
              help="Send resume: replay every event after this seq, then continue live (after a reconnect).")
@click.option("--count", type=click.IntRange(1, 1_000_000), default=None,
              help="Stop after this many new events (default: when the game ends, or --seconds pass).")
@click.option("--seconds", type=click.FloatRange(0.1, 86_400), default=None,
              help="Stop after this long (default: when the game ends, or --count events arrive).")
@output_option
@pass_cli
def watch(cli: CliContext, auth_body: str, url: str | None, resume_after: int | None, count: int | None,
          seconds: float | None, output: str) -> None:
    """Follow a game's live events over its WebSocket push, as a play would; events print as they arrive
    (--output json: one document when it stops, with every event received, in order, duplicates dropped)."""
    import time
    import urllib.parse

    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
    from websockets.sync.client import connect

    from rewardgate_ops.target import live_stack

    if url is None:
        stack = live_stack(cli.state_dir)
        url = stack.extra.get("ws_url") if stack is not None else None
        if not url:
            raise click.UsageError("no local stack is running: pass --url (the wss_link /v2/app/start answered)")
    link = f"{url}{'&' if '?' in url else '?'}auth_body={urllib.parse.quote(auth_body, safe='')}"
    received: list[dict[str, Any]] = []
    last, duplicates, ended, errors = resume_after or 0, 0, False, []
    deadline = time.monotonic() + seconds if seconds else None
    try:
        with connect(link, open_timeout=10, close_timeout=2, max_size=2**20) as ws:
            if resume_after is not None:
                ws.send(json.dumps({"op": "resume", "after_seq": resume_after}))
            while not ended and (count is None or len(received) < count):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                try:
                    text = ws.recv(timeout=left)
                except TimeoutError:
                    break
                value = json.loads(text)
                for message in value if isinstance(value, list) else [value]:
                    if message.get("op") == "end":
                        ended = True
                    elif message.get("op") == "error":
                        errors.append(message)
                        click.echo(f"error {message.get('code')}: {message.get('message')}", err=True)
                    elif message.get("op") == "event":
                        if message["seq"] <= last:
                            duplicates += 1
                            continue
                        last = message["seq"]
                        received.append(message)
                        if output != "json":
                            click.echo(f"{message['seq']:>6}  {message['cmd']}  "
                                       f"{json.dumps(message['data'], ensure_ascii=False)[:100]}")
    except InvalidStatus as refused:
        raise click.ClickException(f"the WebSocket API refused the connection ({refused.response.status_code}): "
                                   f"{refused.response.body.decode(errors='replace').strip()}") from None
    except (InvalidURI, OSError, ConnectionClosed) as exc:
        raise click.ClickException(f"cannot follow {url}: {exc}") from None
    summary = {"url": url, "events": received, "last_seq": last, "duplicates_dropped": duplicates, "ended": ended,
               "errors": errors}
    if output == "json":
        emit(output, summary)
    else:
        click.echo(f"{len(received)} event(s), last seq {last}" + (", the game ended" if ended else ""))


# --- simulate live-event -----------------------------------------------------------------------------


def build_message(cmd: str, options: dict[str, Any], msg_id: str, now_s: int) -> dict[str, Any]:
    """A complete, valid open-live message of `cmd` with the given values (and sensible others)."""
    viewer = {"open_id": options["open_id"] or str(uuid.uuid4()), "union_id": "", "uname": options["uname"],
              "uface": "", "fans_medal_level": 0, "fans_medal_name": "", "fans_medal_wearing_status": False,
              "guard_level": 0}
    common = {"msg_id": msg_id, "room_id": options["room_id"], "timestamp": now_s}
    if cmd == "LIVE_OPEN_PLATFORM_DM":
        data = {**viewer, **common, "msg": options["msg"], "dm_type": 0, "emoji_img_url": ""}
    elif cmd == "LIVE_OPEN_PLATFORM_SEND_GIFT":
        data = {**viewer, **common, "gift_id": options["gift_id"], "gift_name": options["gift_name"],
                "gift_num": options["num"], "price": options["price"], "r_price": options["price"],
                "paid": options["paid"], "gift_icon": "", "combo_gift": False,
                "combo_info": {"combo_base_num": 0, "combo_count": 0, "combo_id": "", "combo_timeout": 0},
                "blind_gift": None, "anchor_info": {"uid": 0, "open_id": "", "uname": "", "uface": ""}}
    elif cmd == "LIVE_OPEN_PLATFORM_GUARD":
        data = {**common, "user_info": {"open_id": viewer["open_id"], "union_id": "", "uname": options["uname"],
                                        "uface": ""},
                "guard_level": options["guard_level"], "guard_num": options["num"], "guard_unit": "月",
                "price": options["price"], "fans_medal_level": 0, "fans_medal_name": "",
                "fans_medal_wearing_status": False}
    elif cmd == "LIVE_OPEN_PLATFORM_SUPER_CHAT":
        data = {**viewer, **common, "message_id": options["message_id"], "message": options["msg"],
                "rmb": options["rmb"], "start_time": now_s, "end_time": now_s + 60}
    elif cmd == "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL":
        data = {**common, "message_ids": [options["message_id"]]}
    else:
        data = {**viewer, **common, "like_text": "liked", "like_count": options["like_count"]}
    return {"cmd": cmd, "data": data}


@simulate_module.command.command("live-event")
@click.option("--room-id", type=click.IntRange(1, 2**53 - 1), required=True, help="The room the message is from.")
@click.option("--cmd", "cmd", required=True,
              type=click.Choice([*CMDS.values(), *CMDS]),
              help="LIVE_OPEN_PLATFORM_DM, _SEND_GIFT, _GUARD, _SUPER_CHAT, _SUPER_CHAT_DEL, _LIKE "
                   "(or dm, gift, guard, super-chat, super-chat-del, like).")
@click.option("--gift-id", type=click.IntRange(1, 2**53 - 1), default=31039, show_default=True)
@click.option("--gift-name", default="Interactive gift", show_default=True)
@click.option("--price", type=click.IntRange(0, 10**9), default=1000, show_default=True,
              help="Unit price in the platform's unit (1 000 = ¥1); also a guard's price.")
@click.option("--num", type=click.IntRange(1, 10_000), default=1, show_default=True, help="gift_num / guard_num.")
@click.option("--paid/--free", default=True, show_default=True, help="A paid gift (only paid gifts settle).")
@click.option("--msg", default="hello from the debug tool", show_default=True, help="Danmaku or super chat text.")
@click.option("--uname", default="debug-viewer", show_default=True)
@click.option("--open-id", default=None, help="The viewer's open_id (default: a random one).")
@click.option("--guard-level", type=click.IntRange(1, 3), default=3, show_default=True)
@click.option("--rmb", type=click.IntRange(0, 10**6), default=30, show_default=True, help="Super chat amount (yuan).")
@click.option("--message-id", type=click.IntRange(1, 2**53 - 1), default=1, show_default=True,
              help="Super chat id (and the id _SUPER_CHAT_DEL deletes).")
@click.option("--like-count", type=click.IntRange(1, 10**6), default=1, show_default=True)
@click.option("--msg-id", default=None, help="The message's msg_id (default: a new one per message).")
@click.option("--count", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many distinct messages to send (one request).")
@click.option("--times", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Send the same request this many times (the platform's redeliveries).")
@click.option("--url", default=None, help="The API's base URL (default: the local stack's).")
@output_option
@pass_cli
def live_event(cli: CliContext, room_id: int, cmd: str, count: int, times: int, url: str | None, msg_id: str | None,
               output: str, **values: Any) -> None:
    """Send complete live messages for a room, marked `test` (accepted only for a sandbox app's game)."""
    command_name = CMDS.get(cmd, cmd)
    if msg_id is not None and count > 1:
        raise click.UsageError("--msg-id names one message; drop it or --count")
    target, base = simulate_module.api_base(cli, url)
    from chalicelib import clock

    now_s = clock.now_ms() // 1000
    options = {**values, "room_id": room_id}
    messages = [build_message(command_name, options, msg_id or uuid.uuid4().hex, now_s) for _ in range(count)]
    endpoint = f"{base.rstrip('/')}/v1/play/rooms/{room_id}/events"
    rows, failures = [], []
    with progress(output if times > 1 else "json", times, f"posting {count} {command_name}") as advance:
        for attempt in range(1, times + 1):
            try:
                status, _type, text = simulate_module.post_json(endpoint, {"events": messages, "test": True},
                                                                sigv4=target.kind == "aws")
            except (urllib.error.URLError, OSError) as exc:
                raise click.ClickException(f"cannot reach {endpoint}: {exc}; is the API running (`make run`)?") \
                    from exc
            advance(1)
            answer = _json_or_text(text)
            if status != 200:
                # a problem (RFC 9457) names what was wrong in `detail`
                failures.append(f"HTTP {status}: {answer.get('detail', text) if isinstance(answer, dict) else text}")
                rows.append({"attempt": attempt, "http_status": status, "msg_id": None, "status": "error",
                             "game_id": None, "seq": None, "settled": None, "error": failures[-1]})
                continue
            rows += [{"attempt": attempt, "http_status": status, **result} for result in answer["results"]]
    emit(output, {"room_id": room_id, "cmd": command_name, "sent": rows}, lambda d: rich_table(
        ("#", "msg_id", "status", "game", "seq", "settled"),
        [(r["attempt"], r["msg_id"], r["status"], r["game_id"], r["seq"], r["settled"]) for r in d["sent"]],
        f"{d['cmd']} to room {d['room_id']}"))
    if failures:
        click.echo(f"{len(failures)} of {times} requests failed: {failures[0]}", err=True)
        raise SystemExit(1)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
