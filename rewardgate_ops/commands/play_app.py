"""`rewardgate play-app ...`: interactive play's developer apps, their access keys and bans."""

from __future__ import annotations

from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import domain_call
from rewardgate_ops.output import emit, output_option, rich_table, write_options

MAX_ID = 2**53 - 1
APP_ID = click.option("--app-id", type=click.IntRange(1, MAX_ID), required=True, help="The play app's id.")


def parse_gift_ids(value: str) -> list[int]:
    """`1,2,3` (or empty) as a list of positive gift ids."""
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if not all(part.isdigit() and int(part) > 0 for part in ids):
        raise click.BadParameter("must be positive gift ids separated by commas, e.g. 31039,31040",
                                 param_hint="'--gift-ids'")
    return [int(part) for part in ids]


def _issue_key(cli: CliContext, app_id: int) -> dict[str, Any]:
    """A new access key: stored in Secrets Manager (and the local secrets file on the local stack)."""
    from chalicelib.play import apps, keys

    key = keys.new_app_key(app_id)
    try:
        keys.put_app_key(key)
    except Exception as exc:  # boto3 raises many types; the operator needs the message
        raise click.ClickException(f"could not store the access key of app {app_id}: {exc}; run `rewardgate "
                                   f"play-app rotate-key --app-id {app_id}` to issue one") from exc
    domain_call(lambda: apps.set_access_key_id(app_id, key.access_key_id))
    shown = {"app_id": app_id, "access_key_id": key.access_key_id, "access_key_secret": key.access_key_secret}
    if cli.target().kind == "local":
        from rewardgate_ops.local_secrets import remember_play_app

        remember_play_app(cli.state_dir, app_id, shown)
    return shown


def _show_key_once(output: str, value: dict[str, Any]) -> None:
    emit(output, value, title="play app access key")
    if output == "table":
        click.echo("The access_key_secret is shown once: store it now (it is kept only in Secrets Manager).", err=True)


@click.group("play-app")
def command() -> None:
    """Interactive play apps: configuration, access keys (Bilibili-compatible signing), bans."""


@command.command("add")
@APP_ID
@click.option("--name", required=True, help="Display name (1-64 characters).")
@click.option("--share-bp", type=click.IntRange(0, 10_000), required=True,
              help="Developer's revenue share in basis points (5000 = 50 %).")
@click.option("--gift-ids", default="", help="The app's interactive gift ids, comma-separated (e.g. 31039,31040).")
@click.option("--sandbox", is_flag=True, help="A sandbox app: accepts debug-tool events; its bills credit sandbox "
                                              "wallets. Cannot change later.")
@write_options
@output_option
@pass_cli
def add(cli: CliContext, app_id: int, name: str, share_bp: int, gift_ids: str, sandbox: bool, yes: bool,
        dry_run: bool, output: str) -> None:
    """Create a play app and issue its access key; prints {app_id, access_key_id, access_key_secret} once."""
    gifts = parse_gift_ids(gift_ids)
    cli.target()
    from chalicelib.edge.fields import validated
    from chalicelib.play import apps
    from chalicelib.play.models import PlayAppPut

    body = domain_call(lambda: validated(PlayAppPut, {"name": name, "share_bp": share_bp,
                                                      "interactive_gift_ids": gifts, "sandbox": sandbox}))
    if not cli.confirm(f"create {'sandbox ' if sandbox else ''}play app {app_id} and issue its access key", yes,
                       dry_run):
        emit(output, {"dry_run": True, "app_id": app_id, **body.model_dump(exclude_none=True)})
        return
    cli.audit("play_app.put", {"app_id": app_id}, body)
    domain_call(lambda: apps.put_app(app_id, body, create_only=True))
    _show_key_once(output, _issue_key(cli, app_id))


@command.command("rotate-key")
@APP_ID
@write_options
@output_option
@pass_cli
def rotate_key(cli: CliContext, app_id: int, yes: bool, dry_run: bool, output: str) -> None:
    """Replace the app's access key; the old one stops verifying (at once where the new one is seen)."""
    cli.target()
    from chalicelib.play import apps

    current = domain_call(lambda: apps.get_app_uncached(app_id))
    if not cli.confirm(f"replace the access key {current.access_key_id} of play app {app_id}", yes, dry_run):
        emit(output, {"dry_run": True, "app_id": app_id, "access_key_id": current.access_key_id})
        return
    cli.audit("play_app.rotate_key", {"app_id": app_id}, {"previous_access_key_id": current.access_key_id})
    _show_key_once(output, _issue_key(cli, app_id))


@command.command("unban")
@APP_ID
@write_options
@output_option
@pass_cli
def unban(cli: CliContext, app_id: int, yes: bool, dry_run: bool, output: str) -> None:
    """Lift the app's ban and forget its offences."""
    cli.target()
    from chalicelib import clock
    from chalicelib.play import apps, bans, security

    domain_call(lambda: apps.get_app_uncached(app_id))
    state = domain_call(lambda: security.ban_state(app_id))
    if not cli.confirm(f"lift the ban of play app {app_id} and forget its {state.offences} offences", yes, dry_run):
        emit(output, {"dry_run": True, "app_id": app_id, "banned": bans.banned(state, clock.now_ms()),
                      "offences": state.offences, "banned_until_ms": state.banned_until_ms})
        return
    cli.audit("play_app.unban", {"app_id": app_id}, {"offences": state.offences})
    before = domain_call(lambda: security.unban(app_id))
    emit(output, {"app_id": app_id, "was_banned": bans.banned(before, clock.now_ms()),
                  "offences_forgotten": before.offences, "banned_until_ms": before.banned_until_ms},
         title="play app unbanned")


@command.command("list")
@output_option
@pass_cli
def list_apps(cli: CliContext, output: str) -> None:
    """Every play app with its share, gifts, key id and ban."""
    cli.target()
    from chalicelib import clock
    from chalicelib.play import apps, bans, security

    rows = []
    for app in domain_call(apps.list_apps):
        state = domain_call(lambda app_id=app.app_id: security.ban_state(app_id))
        rows.append({**app.view().model_dump(), "banned": bans.banned(state, clock.now_ms()),
                     "offences": state.offences, "banned_until_ms": state.banned_until_ms})
    emit(output, rows, lambda found: rich_table(
        ("app", "name", "share bp", "ratio v", "interactive gifts", "sandbox", "access key", "banned"),
        [(r["app_id"], r["name"], r["share_bp"], r["ratio_version"], ",".join(map(str, r["interactive_gift_ids"])),
          "yes" if r["sandbox"] else "", r["access_key_id"], "BANNED" if r["banned"] else "") for r in found],
        "play apps"))
