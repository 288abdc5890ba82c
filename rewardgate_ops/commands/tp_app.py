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
from rewardgate_ops.output import emit, output_option, read_secret, rich_table, write_options

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
@click.option("--platform", required=True, type=click.Choice(PLATFORMS),
              help="Wire profile: douyin (32-byte random prefix) or wechat (16-byte).")
@click.option("--token-file", default=None, help="File holding the message-verification Token (- for stdin); "
                                                 "prompted for when omitted.")
@click.option("--aes-key-file", default=None, help="File holding the current EncodingAESKey (43 characters; - for "
                                                   "stdin); prompted for when omitted.")
@click.option("--previous-aes-key-file", default=None,
              help="File holding the key being rotated out; callbacks encrypted with it are still accepted.")
@click.option("--receiver-id", default=None, callback=_checked(check_receiver_id),
              help="The id the platform appends to each plaintext, when it is not the tp app id.")
@write_options
@output_option
@pass_cli
def add(cli: CliContext, tp_app_id: str, platform: str, token_file: str | None, aes_key_file: str | None,
        previous_aes_key_file: str | None, receiver_id: str | None, yes: bool, dry_run: bool, output: str) -> None:
    """Store (or replace) a tp app's callback credentials in Secrets Manager.

    The token and keys are read from files (--token-file ..., `-` for stdin) or typed at a hidden prompt,
    never from the command line. Replacing a key: give the new one as the AES key and the old one as the
    previous AES key until the platform has switched, then run the command again without it.
    """
    if [token_file, aes_key_file, previous_aes_key_file].count("-") > 1:
        raise click.UsageError("only one secret can come from stdin (-); give the others as files")
    token = _read(check_token, "token", token_file)
    aes_key = _read(check_aes_key, "aes key", aes_key_file)
    previous_aes_key = _read(check_aes_key, "previous aes key", previous_aes_key_file, required=False)
    if previous_aes_key is not None and previous_aes_key == aes_key:
        raise click.BadParameter("must differ from the AES key", param_hint="'--previous-aes-key-file'")
    target = cli.target()
    from chalicelib.secrets import TpAppCredentials, put_tp_app
    from chalicelib.settings import settings

    credentials = TpAppCredentials(
        tp_app_id=tp_app_id, token=token, aes_key=aes_key, platform=platform,  # type: ignore[arg-type]
        previous_aes_key=previous_aes_key, receiver_id=receiver_id,
    )
    name = settings().tp_app_secret(tp_app_id)
    summary = {"tp_app_id": tp_app_id, "platform": platform, "secret": name,
               "aes_key_fingerprint": key_fingerprint(aes_key),
               "previous_aes_key_fingerprint": key_fingerprint(previous_aes_key) if previous_aes_key else None,
               "receiver_id": credentials.expected_receiver_id}
    if not cli.confirm(f"store the credentials of tp app {tp_app_id} in {name}", yes, dry_run):
        emit(output, {"dry_run": True, **summary})
        return
    cli.audit("tp_app.put", {"tp_app_id": tp_app_id}, {k: v for k, v in summary.items() if k != "secret"})
    put_tp_app(credentials)
    if target.kind == "local":
        import json

        from rewardgate_ops.local_secrets import remember_tp_app

        summary["remembered_in"] = str(remember_tp_app(cli.state_dir, tp_app_id, json.loads(credentials.to_json())))
    summary["note"] = f"a running API picks up changed credentials within {CACHE_S // 60} minutes (its secrets cache)"
    emit(output, summary, title=f"stored tp app {tp_app_id}")


def _read(check: Any, label: str, path: str | None, required: bool = True) -> str | None:
    value = read_secret(label, path, required=required)
    if value is None:
        return None
    try:
        return check(value)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint=f"the {label}") from exc


@command.command("list")
@output_option
@pass_cli
def list_(cli: CliContext, output: str) -> None:
    """The tp apps configured for this stage (names and dates from Secrets Manager; no secret value is read)."""
    cli.target()
    from chalicelib.clients import secretsmanager
    from chalicelib.settings import settings

    prefix = settings().tp_app_secret("")
    found = []
    for page in secretsmanager().get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}]):
        for entry in page.get("SecretList", []):
            if entry["Name"].startswith(prefix):
                changed = entry.get("LastChangedDate") or entry.get("CreatedDate")
                found.append({"tp_app_id": entry["Name"][len(prefix):], "secret": entry["Name"],
                              "last_changed": changed.isoformat(timespec="seconds") if changed else None})
    found.sort(key=lambda e: e["tp_app_id"])
    emit(output, found, lambda d: rich_table(("tp app", "secret", "last changed"),
                                             [(e["tp_app_id"], e["secret"], e["last_changed"]) for e in d],
                                             f"tp apps ({len(d)})"))
