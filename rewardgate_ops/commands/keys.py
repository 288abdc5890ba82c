"""`rewardgate keys ...`: the reward-token signing key in Secrets Manager (create once, rotate later)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands._domain import echo_json


def _default_kid() -> str:
    # A random suffix: two rotations in the same second must not share an id (the older key would be lost).
    return f"k{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


@click.group("keys")
def command() -> None:
    """The Ed25519 key that signs reward tokens (secret `rewardgate/{stage}/reward-token-key`)."""


def _public(value: dict) -> dict:
    from chalicelib.rewards import tokens

    key = tokens.key_from_secret(value)
    return {"current_kid": key.kid,
            "keys": [{"kid": kid, "public_key": tokens.public_key_b64(k)} for kid, k in key.public_keys.items()]}


@command.command("init")
@click.option("--kid", default=None, help="Key id (default: k<UTC timestamp>).")
@pass_cli
def init(cli: CliContext, kid: str | None) -> None:
    """Create the signing key; refuses if one exists (use `keys rotate`)."""
    cli.target()
    from chalicelib.rewards import tokens
    from chalicelib.secrets import get_secret_json, put_secret_json
    from chalicelib.settings import settings

    name = settings().reward_token_secret
    if get_secret_json(name, max_age=0) is not None:
        raise click.ClickException(f"{name} already holds a signing key; use `rewardgate keys rotate`")
    value = tokens.new_secret_value(kid or _default_kid())
    put_secret_json(name, value)
    echo_json({"secret": name, **_public(value)})


@command.command("rotate")
@click.option("--kid", default=None, help="Id of the new key (default: k<UTC timestamp>).")
@pass_cli
def rotate(cli: CliContext, kid: str | None) -> None:
    """Start signing with a new key; tokens signed with the last three keys keep verifying."""
    cli.target()
    from chalicelib.rewards import tokens
    from chalicelib.secrets import get_secret_json, put_secret_json
    from chalicelib.settings import settings

    name = settings().reward_token_secret
    current = get_secret_json(name, max_age=0)
    if current is None:
        raise click.ClickException(f"{name} holds no signing key yet; use `rewardgate keys init`")
    value = tokens.rotated_secret_value(current, kid or _default_kid())
    put_secret_json(name, value)
    echo_json({"secret": name, **_public(value)})
