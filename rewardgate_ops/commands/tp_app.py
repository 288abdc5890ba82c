"""`rewardgate tp-app ...`: the platform credentials of third-party apps, in Secrets Manager."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

import click

from chalicelib.secrets import CACHE_S, PLATFORMS
from rewardgate_ops.commands import CliContext, pass_cli

# The callback gateway takes tp app ids from the URL path with the same rule (chalicelib.validate.IDENT);
# an id outside it could be stored but never called back.
TP_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
AES_KEY_LENGTH = 43
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
MAX_TOKEN_LENGTH = 128


def check_tp_app_id(value: str) -> str:
    """A tp app id the gateway's routes accept."""
    if not TP_APP_ID.fullmatch(value):
        raise click.BadParameter("must be 1-64 characters of letters, digits, '.' or '-', starting with a letter "
                                 "or digit")
    return value


def check_token(value: str) -> str:
    """The platform's message token: it enters the signature, so spaces or non-ASCII would never match."""
    if not value:
        raise click.BadParameter("must not be empty")
    if not _VISIBLE_ASCII.fullmatch(value):
        raise click.BadParameter("must be printable ASCII without spaces (as shown in the platform console)")
    if len(value) > MAX_TOKEN_LENGTH:
        raise click.BadParameter(f"must be at most {MAX_TOKEN_LENGTH} characters, got {len(value)}")
    return value


def check_aes_key(value: str) -> str:
    """An EncodingAESKey: 43 base64 characters that decode (with the implied '=') to a 32-byte AES key."""
    if len(value) != AES_KEY_LENGTH:
        raise click.BadParameter(f"an EncodingAESKey has exactly {AES_KEY_LENGTH} characters, got {len(value)}")
    if not _BASE64_CHARS.fullmatch(value):
        raise click.BadParameter("an EncodingAESKey uses only base64 characters A-Z a-z 0-9 + /")
    try:
        key = base64.b64decode(value + "=", validate=True)
    except binascii.Error as exc:
        raise click.BadParameter(f"is not valid base64 ({exc})") from exc
    if len(key) != 32:
        raise click.BadParameter(f"decodes to {len(key)} bytes; AES-256 needs 32")
    return value


def check_receiver_id(value: str) -> str:
    """The id the platform appends to each plaintext (default: the tp app id)."""
    if not _VISIBLE_ASCII.fullmatch(value) or len(value) > MAX_TOKEN_LENGTH:
        raise click.BadParameter(f"must be 1-{MAX_TOKEN_LENGTH} printable ASCII characters without spaces")
    return value


def _checked(check: Any) -> Any:
    def callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        return None if value is None else check(value)

    return callback


def key_fingerprint(aes_key: str) -> str:
    """A short, non-secret way to tell keys apart in output and logs."""
    return hashlib.sha256(aes_key.encode()).hexdigest()[:12]


@click.group("tp-app")
def command() -> None:
    """Third-party platform apps (tp apps): the credentials their callbacks are verified with."""


@command.command("add")
@click.option("--tp-app-id", required=True, callback=_checked(check_tp_app_id),
              help="The tp app's id (the {tp_app_id} of its callback URLs).")
@click.option("--token", required=True, callback=_checked(check_token), help="The message-verification Token.")
@click.option("--aes-key", required=True, callback=_checked(check_aes_key),
              help="The current EncodingAESKey (43 characters).")
@click.option("--previous-aes-key", default=None, callback=_checked(check_aes_key),
              help="The key being rotated out; callbacks encrypted with it are still accepted.")
@click.option("--platform", required=True, type=click.Choice(PLATFORMS),
              help="Wire profile: douyin (32-byte random prefix) or wechat (16-byte).")
@click.option("--receiver-id", default=None, callback=_checked(check_receiver_id),
              help="The id the platform appends to each plaintext, when it is not the tp app id.")
@pass_cli
def add(cli: CliContext, tp_app_id: str, token: str, aes_key: str, previous_aes_key: str | None, platform: str,
        receiver_id: str | None) -> None:
    """Store (or replace) a tp app's callback credentials in Secrets Manager.

    Replacing a key: pass the new one as --aes-key and the old one as --previous-aes-key until the
    platform has switched, then run the command again without --previous-aes-key.
    """
    if previous_aes_key is not None and previous_aes_key == aes_key:
        raise click.BadParameter("must differ from --aes-key", param_hint="'--previous-aes-key'")
    target = cli.target()
    from chalicelib.secrets import TpAppCredentials, put_tp_app
    from chalicelib.settings import settings

    credentials = TpAppCredentials(
        tp_app_id=tp_app_id, token=token, aes_key=aes_key, platform=platform,
        previous_aes_key=previous_aes_key, receiver_id=receiver_id,
    )
    try:
        put_tp_app(credentials)
    except Exception as exc:  # boto3 raises many types; the operator needs the message, not a traceback
        raise click.ClickException(f"could not store the credentials at {target.description}: {exc}") from exc
    click.echo(f"stored tp app {tp_app_id} ({platform}) as secret {settings().tp_app_secret(tp_app_id)}")
    click.echo(f"  aes key {key_fingerprint(aes_key)} (sha256 prefix)"
               + (f", previous aes key {key_fingerprint(previous_aes_key)}" if previous_aes_key else "")
               + f", receiver id {credentials.expected_receiver_id}")
    if target.kind == "local":
        import json

        from rewardgate_ops.local_secrets import remember_tp_app

        path = remember_tp_app(cli.state_dir, tp_app_id, json.loads(credentials.to_json()))
        click.echo(f"  remembered in {path}: the local stack seeds it again at every start")
    click.echo(f"  a running API picks up changed credentials within {CACHE_S // 60} minutes (its secrets cache)")
