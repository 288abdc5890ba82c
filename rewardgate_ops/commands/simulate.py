"""`rewardgate simulate ...`: play the platform against a running API (also the developer's debug tool)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.commands.tp_app import check_tp_app_id, key_fingerprint
from rewardgate_ops.output import emit, output_option, progress, rich_table

HTTP_TIMEOUT_S = 30


def load_event(spec: str) -> tuple[dict[str, Any], bool]:
    """The event to send, from a JSON file or by a sample's name; and whether it is a sample."""
    path = Path(spec)
    is_sample = False
    if path.is_file():
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise click.BadParameter(f"{path} is not valid JSON: {exc}", param_hint="'--event'") from exc
    else:
        try:
            from rewardgate_ops.sample_events import sample_event
        except ImportError as exc:
            raise click.BadParameter(
                f"{spec!r} is not a file, and sample events are not available ({exc})", param_hint="'--event'"
            ) from exc
        try:
            value = sample_event(spec)
            is_sample = True
        except (KeyError, ValueError) as exc:
            raise click.BadParameter(
                f"{spec!r} is neither a file nor a sample event name ({exc})", param_hint="'--event'"
            ) from exc
    if isinstance(value, (bytes, str)):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise click.BadParameter("the event must be a JSON object", param_hint="'--event'")
    return value, is_sample


def address_sample(event: dict[str, Any], tp_app_id: str, app_id: str | None) -> dict[str, Any]:
    """A sample addressed to this tp app (the gateway refuses a payload naming another) and app."""
    addressed = dict(event)
    if "TpAppId" in addressed:
        addressed["TpAppId"] = tp_app_id
    if app_id is not None and "AppId" in addressed:
        addressed["AppId"] = app_id
    return addressed


def default_path(event: dict[str, Any]) -> str:
    """`auth` for authorization events and ticket pushes, `events` for everything else (as the platform)."""
    from rewardgate_ops.sample_events import channel_of

    return channel_of(str(event.get("Event")))


def message_bytes(event: dict[str, Any]) -> bytes:
    """The plaintext message, as the platform serializes it (compact UTF-8 JSON)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post_json(url: str, body: Any, sigv4: bool = False) -> tuple[int, str, str]:
    """POST `body` as JSON; (status, content type, response text), for error statuses too. `sigv4` signs the
    request with the caller's AWS credentials, as IAM-authorized (`/v1/`) routes of a deployed stage need."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    if sigv4:
        import boto3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        session = boto3.session.Session()
        signed = AWSRequest(method="POST", url=url, data=raw, headers=headers)
        SigV4Auth(session.get_credentials(), "execute-api", session.region_name or "us-east-1").add_auth(signed)
        headers = dict(signed.headers.items())
    request = urllib.request.Request(url, data=raw, method="POST", headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            return response.status, response.headers.get("Content-Type", ""), response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode(errors="replace")


def api_base(cli: CliContext, url: str | None, hint: str = "") -> tuple[Any, str]:
    """The target and the API's base URL: `--url`, else the target's (the local stack's)."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="'--url'")
    target = cli.target()
    base_url = url or target.api_url
    if base_url is None:
        raise click.UsageError(f"--url is required for {target.description}: the API's base URL{hint}")
    return target, base_url


def _show_verbose(credentials: Any, message: bytes, prefix: bytes, body: dict[str, str], url: str,
                  show_secrets: bool) -> None:
    click.echo(f"message ({len(message)} bytes, UTF-8 JSON):", err=True)
    click.echo("  " + json.dumps(json.loads(message), ensure_ascii=False, indent=2).replace("\n", "\n  "), err=True)
    click.echo(
        f"credentials: tp app {credentials.tp_app_id} · platform {credentials.platform} · receiver id "
        f"{credentials.expected_receiver_id} · aes key {key_fingerprint(credentials.aes_key)} (sha256 prefix)"
        f" · token {len(credentials.token)} chars",
        err=True,
    )
    click.echo(
        f"plaintext = random prefix ({len(prefix)} bytes: {prefix.hex()}) ‖ uint32_be({len(message)}) ‖ message ‖ "
        f"{credentials.expected_receiver_id!r}, PKCS#7 to 32-byte blocks, AES-256-CBC with IV = key[:16]",
        err=True,
    )
    click.echo(f"envelope → POST {url}", err=True)
    click.echo("  " + json.dumps(body, indent=2).replace("\n", "\n  "), err=True)
    token_shown = credentials.token if show_secrets else "<token>"
    parts = sorted([credentials.token, body["TimeStamp"], body["Nonce"], body["Encrypt"]])
    click.echo("signature = sha1(''.join(sorted([token, TimeStamp, Nonce, Encrypt]))), sorted inputs:", err=True)
    for index, part in enumerate(parts, start=1):
        shown = token_shown if part == credentials.token else part
        click.echo(f"  {index}. {shown}", err=True)
    digest = hashlib.sha1("".join(parts).encode()).hexdigest()  # noqa: S324 - the platform's scheme
    verdict = "equals MsgSignature" if digest == body["MsgSignature"].lower() else "DIFFERS from MsgSignature"
    click.echo(f"  sha1 = {digest} ({verdict})", err=True)


@click.group("simulate")
def command() -> None:
    """Play the open platform (or another caller) against a running API."""


@command.command("callback")
@click.option("--tp-app-id", required=True, callback=lambda _c, _p, v: check_tp_app_id(v),
              help="The tp app whose credentials sign and encrypt the callback.")
@click.option("--event", "event_spec", required=True, metavar="FILE_OR_NAME",
              help="A JSON file with the event, or the name of a sample event (e.g. AUTHORIZED, PUSH).")
@click.option("--times", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="How many times to POST (the same body: the platform's retries; see --fresh).")
@click.option("--fresh", is_flag=True, help="Build a new body (nonce, random prefix, ciphertext) for every POST.")
@click.option("--app-id", default=None,
              help="For a sample event: the AppId it is about (default: the sample's).")
@click.option("--path", "path_kind", type=click.Choice(["auth", "events"]), default=None,
              help="Which callback URL; default: auth for PUSH/AUTHORIZED/UNAUTHORIZED/UPDATE_AUTHORIZED, else events.")
@click.option("--url", default=None,
              help="The API's base URL; default: the local stack's (http://127.0.0.1:8000). Include a stage "
                   "prefix for API Gateway, e.g. https://abc.execute-api.../api")
@click.option("--timestamp", default=None,
              help="TimeStamp to sign (default: now); e.g. an old one to test the skew check.")
@click.option("--nonce", default=None, help="Nonce to sign (default: random digits).")
@click.option("-v", "--verbose", is_flag=True, help="Show the plaintext, the envelope and the signature inputs.")
@click.option("--show-secrets", is_flag=True, help="With --verbose, show the token instead of <token>.")
@output_option
@pass_cli
def callback(cli: CliContext, tp_app_id: str, event_spec: str, times: int, fresh: bool, app_id: str | None,
             path_kind: str | None, url: str | None, timestamp: str | None, nonce: str | None, verbose: bool,
             show_secrets: bool, output: str) -> None:
    """Encrypt and sign an event exactly as the platform does, POST it, and print each answer.

    A sample event is addressed to --tp-app-id (its TpAppId field) and, with --app-id, to that app;
    a file is sent as it is. Exits non-zero when any answer is not a 2xx.
    """
    event, is_sample = load_event(event_spec)
    if is_sample:
        event = address_sample(event, tp_app_id, app_id)
    elif app_id is not None:
        raise click.UsageError("--app-id applies to sample events; edit the file's AppId instead")
    target, base_url = api_base(cli, url, " (the stack output EventsCallbackUrl up to /callbacks)")
    from chalicelib.callbacks.crypto import build_callback, random_prefix_bytes
    from chalicelib.secrets import get_tp_app

    credentials = get_tp_app(tp_app_id)
    if credentials is None:
        raise click.ClickException(
            f"tp app {tp_app_id!r} is not configured at {target.description}; add it with `rewardgate tp-app add`"
        )
    endpoint = f"{base_url.rstrip('/')}/callbacks/{tp_app_id}/{path_kind or default_path(event)}"
    message = message_bytes(event)

    def build() -> tuple[bytes, dict[str, str]]:
        prefix = os.urandom(random_prefix_bytes(credentials.platform))
        return prefix, build_callback(
            credentials, message,
            timestamp=timestamp or str(int(time.time())),
            nonce=nonce or str(secrets.randbelow(10**10)),
            random_prefix=prefix,
        )

    prefix, body = build()
    failures = 0
    answers = []
    with progress(output if times > 1 else "json", times, f"posting {event_spec}") as advance:
        for attempt in range(1, times + 1):
            if fresh and attempt > 1:
                prefix, body = build()
            if verbose and (attempt == 1 or fresh):
                _show_verbose(credentials, message, prefix, body, endpoint, show_secrets)
            try:
                status, content_type, text = post_json(endpoint, body)
            except (urllib.error.URLError, OSError) as exc:
                raise click.ClickException(f"cannot reach {endpoint}: {exc}; is the API running (`make run`)?") from exc
            failures += not 200 <= status < 300
            answers.append({"attempt": attempt, "status": status, "content_type": content_type or None, "body": text})
            advance(1)
    emit(output, {"endpoint": endpoint, "answers": answers, "failures": failures},
         lambda d: rich_table(("#", "status", "content type", "body"),
                              [(a["attempt"], a["status"], a["content_type"], a["body"]) for a in d["answers"]],
                              f"POST {endpoint}"))
    if failures:
        click.echo(f"{failures} of {times} answers were not 2xx", err=True)
        raise SystemExit(1)
