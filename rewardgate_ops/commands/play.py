"""`rewardgate play ...` (identity codes, the master key, settlement, bills) and `rewardgate simulate live-event`
(the developer debug tool: complete, valid live messages, marked `test`, for sandbox apps' games)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands import simulate as simulate_module
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.commands._play_output import emit, fail, output_option

HTTP_TIMEOUT_S = 30
CMDS = {
    "dm": "LIVE_OPEN_PLATFORM_DM", "gift": "LIVE_OPEN_PLATFORM_SEND_GIFT", "guard": "LIVE_OPEN_PLATFORM_GUARD",
    "super-chat": "LIVE_OPEN_PLATFORM_SUPER_CHAT", "super-chat-del": "LIVE_OPEN_PLATFORM_SUPER_CHAT_DEL",
    "like": "LIVE_OPEN_PLATFORM_LIKE",
}


@click.group("play")
def command() -> None:
    """Interactive play: identity codes, the play master key, settlement and bills."""


@command.command("code")
@click.option("--anchor-id", type=click.IntRange(1, 2**53 - 1), required=True, help="The streamer's uid.")
@click.option("--room-id", type=click.IntRange(1, 2**53 - 1), default=None,
              help="The streamer's room (required the first time; the code is bound to it).")
@click.option("--uname", default=None, help="The streamer's display name (shown to plays as anchor_info.uname).")
@click.option("--refresh", is_flag=True, help="Issue a new code; the old one stops working at once.")
@output_option
@pass_cli
def code(cli: CliContext, anchor_id: int, room_id: int | None, uname: str | None, refresh: bool, output: str) -> None:
    """Show (or create, or refresh) a streamer's identity code."""
    cli.target()
    from chalicelib.play import anchors
    from chalicelib.play.models import CodeRequest, parse

    if refresh:
        view = domain_call(lambda: anchors.refresh_code(anchor_id))
    elif room_id is None:
        view = domain_call(lambda: anchors.get_code(anchor_id))
    else:
        body = domain_call(lambda: parse(CodeRequest, {"room_id": room_id, "uname": uname}))
        view = domain_call(lambda: anchors.issue_code(anchor_id, body.room_id, body.uname))
    emit(view.model_dump(), output, ("anchor_id", "room_id", "code", "generation"))


@command.command("init-key")
@output_option
@pass_cli
def init_key(cli: CliContext, output: str) -> None:
    """Create interactive play's master key in Secrets Manager (once per stage; refuses if it exists)."""
    cli.target()
    from chalicelib.play.config import play_settings
    from chalicelib.play.keys import new_master_secret
    from chalicelib.secrets import forget, get_secret_json, put_secret_json

    name = play_settings().key_secret
    forget(name)
    if get_secret_json(name) is not None:
        raise fail(f"{name} already holds the play master key; it is never replaced (every identity code derives "
                   "from it)")
    put_secret_json(name, new_master_secret())
    emit({"secret": name, "created": True}, output, ("secret", "created"))


@command.command("settlement")
@click.option("--app-id", type=click.IntRange(1, 2**53 - 1), required=True, help="The play app.")
@click.option("--day", default=None, help="A UTC+8 day, YYYY-MM-DD (default: today in UTC+8).")
@output_option
@pass_cli
def settlement_cmd(cli: CliContext, app_id: int, day: str | None, output: str) -> None:
    """A day's settlement: gifts, revenue and developer share (1 000 = ¥1), closed or running."""
    cli.target()
    from chalicelib import clock
    from chalicelib.play import bills, settlement

    chosen = day or settlement.day_of(clock.now_ms())
    try:
        settlement.day_start_ms(chosen)
    except ValueError:
        raise click.BadParameter("must be a day like 2026-11-22", param_hint="'--day'") from None
    view = domain_call(lambda: bills.settlement_view(app_id, chosen))
    emit(view.model_dump(), output, ("app_id", "day", "gifts", "revenue", "developer_share", "closed",
                                     "ratio_versions"))


@command.command("close-bills")
@output_option
@pass_cli
def close_bills(cli: CliContext, output: str) -> None:
    """Run the bills job now: close every day due (00:30 UTC+8 the next day) and place pending credits."""
    cli.target()
    from chalicelib.play import bills

    report = domain_call(bills.close_due).body()
    emit(report, output, ("closed", "held", "credited", "credit_failed"))
    if report["held"]:
        raise SystemExit(3)


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


def _post(url: str, body: dict[str, Any], target: Any) -> tuple[int, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if target.kind == "aws":
        # /v1/ routes are IAM-authorized: sign with SigV4 as the stage's callers do.
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.session.Session()
        signed = AWSRequest(method="POST", url=url, data=raw, headers=headers)
        SigV4Auth(session.get_credentials(), "execute-api", session.region_name or "us-east-1").add_auth(signed)
        headers = dict(signed.headers.items())
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")  # noqa: S310 - checked scheme
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text


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
    if url is not None and not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="'--url'")
    target = cli.target()
    base = url or target.api_url
    if base is None:
        raise click.UsageError(f"--url is required for {target.description}: the API's base URL")
    from chalicelib import clock

    now_s = clock.now_ms() // 1000
    options = {**values, "room_id": room_id}
    messages = [build_message(command_name, options, msg_id or uuid.uuid4().hex, now_s) for _ in range(count)]
    endpoint = f"{base.rstrip('/')}/v1/play/rooms/{room_id}/events"
    rows, failures = [], 0
    for attempt in range(1, times + 1):
        try:
            status, answer = _post(endpoint, {"events": messages, "test": True}, target)
        except (urllib.error.URLError, OSError) as exc:
            raise fail(f"cannot reach {endpoint}: {exc}; is the API running (`make run`)?") from exc
        if status != 200:
            failures += 1
            detail = answer.get("message", answer) if isinstance(answer, dict) else answer
            rows.append({"attempt": attempt, "http_status": status, "msg_id": "-", "status": "error",
                         "game_id": None, "seq": None, "settled": None, "error": str(detail)})
            continue
        for result in answer["results"]:
            rows.append({"attempt": attempt, "http_status": status, **result})
    emit({"room_id": room_id, "cmd": command_name, "sent": rows}, output,
         ("attempt", "msg_id", "status", "game_id", "seq", "settled"), rows_key="sent")
    errors = [r for r in rows if r["status"] == "error"]
    if failures:
        click.echo(f"{failures} of {times} requests failed: {errors[0]['error']}", err=True)
        raise SystemExit(1)
