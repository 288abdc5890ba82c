"""`rewardgate keys ...`: the reward-token signing key in Secrets Manager (create once, rotate later)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.output import emit, output_option, rich_table, write_options


def _default_kid() -> str:
    # A random suffix: two rotations in the same second must not share an id (the older key would be lost).
    return f"k{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


@click.group("keys")
def command() -> None:
    """The Ed25519 key that signs reward tokens (secret `rewardgate/{stage}/reward-token-key`)."""


def _public(name: str, value: dict) -> dict:
    from chalicelib.rewards import tokens

    key = tokens.key_from_secret(value)
    return {"secret": name, "current_kid": key.kid, "keys": [
        {"kid": kid, "public_key": tokens.public_key_b64(key.public_keys[kid])} for kid in tokens.ordered_kids(key)]}


def _table(data: dict[str, Any]) -> Any:
    return rich_table(("kid", "public key (base64url)", "current"),
                      [(k["kid"], k["public_key"], "yes" if k["kid"] == data["current_kid"] else "")
                       for k in data["keys"]], f"keys in {data['secret']}")


@command.command("show")
@output_option
@pass_cli
def show(cli: CliContext, output: str) -> None:
    """The public keys tokens verify with (current first); the private key is never shown."""
    cli.target()
    from chalicelib.secrets import get_secret_json
    from chalicelib.settings import settings

    name = settings().reward_token_secret
    value = get_secret_json(name, max_age=0)
    if value is None:
        raise click.ClickException(f"{name} holds no signing key yet; use `rewardgate keys init`")
    emit(output, _public(name, value), _table)


@command.command("init")
@click.option("--kid", default=None, help="Key id (default: k<UTC timestamp>-<random>).")
@write_options
@output_option
@pass_cli
def init(cli: CliContext, kid: str | None, yes: bool, dry_run: bool, output: str) -> None:
    """Create the signing key; refuses if one exists (use `keys rotate`)."""
    cli.target()
    from chalicelib.rewards import tokens
    from chalicelib.secrets import get_secret_json, put_secret_json
    from chalicelib.settings import settings

    name = settings().reward_token_secret
    if get_secret_json(name, max_age=0) is not None:
        raise click.ClickException(f"{name} already holds a signing key; use `rewardgate keys rotate`")
    kid = kid or _default_kid()
    if not cli.confirm(f"create signing key {kid} in {name}", yes, dry_run):
        emit(output, {"dry_run": True, "secret": name, "kid": kid})
        return
    value = tokens.new_secret_value(kid)
    cli.audit("keys.init", {"secret": name}, {"kid": kid})
    put_secret_json(name, value)
    emit(output, _public(name, value), _table)


@command.command("rotate")
@click.option("--kid", default=None, help="Id of the new key (default: k<UTC timestamp>-<random>).")
@write_options
@output_option
@pass_cli
def rotate(cli: CliContext, kid: str | None, yes: bool, dry_run: bool, output: str) -> None:
    """Start signing with a new key; tokens signed with the last three keys keep verifying."""
    cli.target()
    from chalicelib.rewards import tokens
    from chalicelib.secrets import get_secret_json, put_secret_json
    from chalicelib.settings import settings

    name = settings().reward_token_secret
    current = get_secret_json(name, max_age=0)
    if current is None:
        raise click.ClickException(f"{name} holds no signing key yet; use `rewardgate keys init`")
    kid = kid or _default_kid()
    if not cli.confirm(f"rotate {name} to a new key {kid}", yes, dry_run):
        emit(output, {"dry_run": True, "secret": name, "kid": kid, "current_kid": current["kid"]})
        return
    value = tokens.rotated_secret_value(current, kid)
    cli.audit("keys.rotate", {"secret": name}, {"kid": kid, "previous_kid": current["kid"]})
    put_secret_json(name, value)
    emit(output, _public(name, value), _table)
