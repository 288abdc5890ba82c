"""The local stack's secrets: generated and kept in git-ignored files, seeded into moto at every start.

moto's Secrets Manager lives in memory, so what it must hold across restarts is kept in the state
directory (`.local/` by default, git-ignored, files readable by the owner only):
- `secrets.json`: the reward-token Ed25519 signing key, `{"kid": ..., "private_key": ...}` in the format
  `chalicelib.rewards.tokens` reads, generated on first start. It never leaves the laptop.
- `tp-apps.json`: the tp app credentials added with `rewardgate tp-app add` against the local stack, so
  that DynamoDB Local's persisted events and app states stay usable after a restart.
- `play-key.json`: interactive play's master key (identity codes, open ids, game tokens), generated on
  first start; `play-apps.json`: the play apps' access keys issued by `rewardgate play-app add` /
  `rotate-key` against the local stack.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from rewardgate_ops.errors import OpsError

SECRETS_FILE = "secrets.json"
TP_APPS_FILE = "tp-apps.json"
PLAY_KEY_FILE = "play-key.json"
PLAY_APPS_FILE = "play-apps.json"


class LocalSecretsError(OpsError, RuntimeError):
    """A local secrets file is unusable; the message says which and what to do."""


def write_private_json(path: Path, value: Any) -> None:
    """Write JSON readable by the owner only, atomically (a crash never leaves half a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(value, out, indent=2, sort_keys=True)
        out.write("\n")
    tmp.replace(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise LocalSecretsError(f"{path} is not valid JSON ({exc}); fix it or delete it") from exc


def ensure_signing_key(state_dir: Path) -> tuple[dict[str, Any], bool]:
    """The local reward-token signing key from `secrets.json`, generated on first use.

    Returns the secret's value and whether it was generated now. A file that does not hold a usable
    key is an error, never silently replaced: tokens already issued were signed with it.
    """
    from chalicelib.rewards.tokens import key_from_secret, new_secret_value

    path = state_dir / SECRETS_FILE
    if path.exists():
        value = _read_json(path)
        try:
            key_from_secret(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalSecretsError(
                f"{path} does not hold a usable Ed25519 signing key ({exc!r}); delete it to generate a new one "
                "(tokens signed with the old key will no longer verify)"
            ) from exc
        return value, False
    value = new_secret_value(kid=f"local-{secrets.token_hex(4)}")
    write_private_json(path, value)
    return value, True


def _load_map(path: Path, what: str) -> dict[str, dict[str, Any]]:
    """A remembered JSON object (`{}` when the file does not exist yet)."""
    if not path.exists():
        return {}
    value = _read_json(path)
    if not isinstance(value, dict):
        raise LocalSecretsError(f"{path} must hold a JSON object of {what}")
    return value


def _remember(path: Path, key: str, value: dict[str, Any], what: str) -> Path:
    found = _load_map(path, what)
    found[key] = value
    write_private_json(path, found)
    return path


def load_tp_apps(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The tp apps remembered for the local stack, by tp app id."""
    return _load_map(state_dir / TP_APPS_FILE, "tp app id -> credentials")


def remember_tp_app(state_dir: Path, tp_app_id: str, credentials: dict[str, Any]) -> Path:
    """Record a tp app's credentials for the next starts of the local stack; returns the file."""
    return _remember(state_dir / TP_APPS_FILE, tp_app_id, credentials, "tp app id -> credentials")


def seed_secrets(state_dir: Path) -> dict[str, str]:
    """Put the signing key and the remembered tp apps into (moto's) Secrets Manager.

    The environment must already point at the local stack. Returns each secret name with where it
    came from, for the start-up table.
    """
    from chalicelib.secrets import TpAppCredentials, put_secret_json, put_tp_app
    from chalicelib.settings import settings

    seeded: dict[str, str] = {}
    key, created = ensure_signing_key(state_dir)
    put_secret_json(settings().reward_token_secret, key)
    seeded[settings().reward_token_secret] = (
        f"kid {key['kid']}, {'generated now in' if created else 'from'} {state_dir / SECRETS_FILE}"
    )
    for tp_app_id, value in sorted(load_tp_apps(state_dir).items()):
        try:
            put_tp_app(TpAppCredentials(**value))
        except (TypeError, ValueError) as exc:
            raise LocalSecretsError(
                f"tp app {tp_app_id!r} in {state_dir / TP_APPS_FILE} is malformed ({exc}); "
                "fix or remove its entry, or add it again with `rewardgate tp-app add`"
            ) from exc
        seeded[settings().tp_app_secret(tp_app_id)] = f"tp app ({value.get('platform')}), from {TP_APPS_FILE}"
    seeded.update(seed_play_secrets(state_dir))
    return seeded


def ensure_play_key(state_dir: Path) -> tuple[dict[str, Any], bool]:
    """Interactive play's master key from `play-key.json`, generated on first use (never replaced:
    identity codes derive from it)."""
    from chalicelib.play.keys import new_master_secret

    path = state_dir / PLAY_KEY_FILE
    if path.exists():
        value = _read_json(path)
        if not isinstance(value, dict) or not isinstance(value.get("master_key"), str):
            raise LocalSecretsError(f"{path} does not hold a play master key; delete it to generate a new one "
                                    "(every identity code changes)")
        return value, False
    value = new_master_secret()
    write_private_json(path, value)
    return value, True


def load_play_apps(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The play apps' access keys remembered for the local stack, by app id."""
    return _load_map(state_dir / PLAY_APPS_FILE, "app id -> access key")


def remember_play_app(state_dir: Path, app_id: int, access_key: dict[str, Any]) -> Path:
    """Record a play app's access key for the next starts of the local stack; returns the file."""
    return _remember(state_dir / PLAY_APPS_FILE, str(app_id), access_key, "app id -> access key")


def seed_play_secrets(state_dir: Path) -> dict[str, str]:
    """Put the play master key and the remembered play apps' access keys into (moto's) Secrets Manager."""
    from chalicelib.play.config import play_settings
    from chalicelib.secrets import put_secret_json

    seeded: dict[str, str] = {}
    key, created = ensure_play_key(state_dir)
    put_secret_json(play_settings().key_secret, key)
    seeded[play_settings().key_secret] = f"{'generated now in' if created else 'from'} {state_dir / PLAY_KEY_FILE}"
    for app_id, value in sorted(load_play_apps(state_dir).items()):
        put_secret_json(play_settings().app_secret(int(app_id)), value)
        seeded[play_settings().app_secret(int(app_id))] = f"play app access key, from {PLAY_APPS_FILE}"
    return seeded
