"""`rewardgate token verify --token T`: check a reward token, offline with a public key or with the stage's keys."""

from __future__ import annotations

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.output import emit, output_option


@click.group("token")
def command() -> None:
    """Reward tokens (compact JWS, EdDSA; the former two-part format still verifies)."""


@command.command("verify")
@click.option("--token", required=True, help="The token (a receipt, not a secret).")
@click.option("--public-key", help="A base64url public key (GET /v1/keys/reward-token); no network needed.")
@output_option
@pass_cli
def verify(cli: CliContext, token: str, public_key: str | None, output: str) -> None:
    """Verify a token's signature and print its claims; exit 1 if it does not verify."""
    from chalicelib.errors import InvalidToken
    from chalicelib.rewards import tokens

    if public_key is not None:
        try:
            keys = {tokens.claimed_kid(token) or "": tokens.load_public_key(public_key)}
        except ValueError as exc:
            raise click.BadParameter(f"not an Ed25519 public key: {exc}", param_hint="--public-key") from exc
    else:
        cli.target()
        keys = tokens.signing_key().public_keys
    try:
        claims = tokens.verify(token, keys)
    except InvalidToken as error:
        raise click.ClickException(f"invalid token: {error.message}") from error
    emit(output, {"valid": True, "format": "jws" if token.count(".") == 2 else "legacy", "claims": claims},
         title="token verifies")
