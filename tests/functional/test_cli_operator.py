"""Operator commands against moto (tp-app add, simulate callback) and the local stack's secrets files."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from click.testing import CliRunner

from chalicelib.callbacks.crypto import open_callback
from chalicelib.play.config import play_settings
from chalicelib.rewards.tokens import key_from_secret
from chalicelib.secrets import TpAppCredentials, put_tp_app
from chalicelib.settings import settings
from rewardgate_ops.cli import rewardgate
from rewardgate_ops.local_secrets import (
    SECRETS_FILE,
    TP_APPS_FILE,
    LocalSecretsError,
    ensure_signing_key,
    remember_tp_app,
    seed_secrets,
)
from rewardgate_ops.sample_events import SAMPLE_APP_ID
from tests.callback_factory import new_aes_key, sign_like_platform
from tests.conftest import uid


def invoke(tmp_path, *args: str, stdin: str | None = None, output: str = "json"):
    return CliRunner(env={"RG_OUTPUT": output, "COLUMNS": "240"}).invoke(
        rewardgate, ["--state-dir", str(tmp_path), *args], input=stdin)


def secret_file(tmp_path, value: str) -> str:
    path = tmp_path / f"secret-{uid('f')}"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def stored_secret(name: str) -> dict | None:
    client = boto3.client("secretsmanager")
    try:
        return json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        return None


# --- tp-app add --------------------------------------------------------------------------------------

def test_tp_app_add__valid_input__credentials_stored_in_secrets_manager(tmp_path):
    # GIVEN valid credentials, with a key being rotated out and an explicit receiver id
    tp_app_id, key, previous = uid("tt"), new_aes_key(), new_aes_key()
    # WHEN tp-app add runs (the environment points at moto, as `eval "$(rewardgate local env)"` would)
    # (the token from stdin, the keys from files: never on the command line)
    result = invoke(tmp_path, "tp-app", "add", "--tp-app-id", tp_app_id, "--token-file", "-",
                    "--aes-key-file", secret_file(tmp_path, key),
                    "--previous-aes-key-file", secret_file(tmp_path, previous), "--platform", "wechat",
                    "--receiver-id", "wx-receiver", stdin="T0ken-x\n")
    # THEN it succeeds and the secret holds exactly these credentials
    assert result.exit_code == 0, result.output
    assert stored_secret(settings().tp_app_secret(tp_app_id)) == {
        "tp_app_id": tp_app_id, "token": "T0ken-x", "aes_key": key, "previous_aes_key": previous,
        "platform": "wechat", "receiver_id": "wx-receiver",
    }
    # AND the output says where, without echoing the token or a key
    assert "endpoints from the environment" in result.output
    assert "T0ken-x" not in result.output and key not in result.output and previous not in result.output
    # AND outside the local stack nothing is written to the local state folder
    assert not (tmp_path / TP_APPS_FILE).exists()


def test_tp_app_add__same_id_again__credentials_replaced(tmp_path):
    tp_app_id, first, second = uid("tt"), new_aes_key(), new_aes_key()
    base = ["tp-app", "add", "--tp-app-id", tp_app_id, "--token-file", secret_file(tmp_path, "tok"),
            "--platform", "douyin"]
    assert invoke(tmp_path, *base, "--aes-key-file", secret_file(tmp_path, first)).exit_code == 0
    # WHEN the key is rotated with the old one kept as previous
    assert invoke(tmp_path, *base, "--aes-key-file", secret_file(tmp_path, second),
                  "--previous-aes-key-file", secret_file(tmp_path, first)).exit_code == 0
    stored = stored_secret(settings().tp_app_secret(tp_app_id))
    assert (stored["aes_key"], stored["previous_aes_key"]) == (second, first)


def test_tp_app_add__invalid_key__nothing_stored(tmp_path):
    tp_app_id = uid("tt")
    result = invoke(tmp_path, "tp-app", "add", "--tp-app-id", tp_app_id, "--token-file", secret_file(tmp_path, "tok"),
                    "--aes-key-file", secret_file(tmp_path, "short"), "--platform", "douyin")
    assert result.exit_code == 2
    assert "an EncodingAESKey has exactly 43 characters, got 5" in result.output
    assert stored_secret(settings().tp_app_secret(tp_app_id)) is None


def test_tp_app_add__secret_on_the_command_line__refused(tmp_path):
    # the old --token/--aes-key options put secrets in shell history and `ps`: they are gone
    result = invoke(tmp_path, "tp-app", "add", "--tp-app-id", uid("tt"), "--token", "tok", "--platform", "douyin")
    assert result.exit_code == 2
    assert "No such option '--token'" in result.output


def test_tp_app_add__no_file_and_no_terminal__refused_naming_the_file_option(tmp_path):
    result = invoke(tmp_path, "tp-app", "add", "--tp-app-id", uid("tt"), "--platform", "douyin")
    assert result.exit_code == 2
    assert "--token-file PATH" in result.output


def test_tp_app_add__dry_run__nothing_stored(tmp_path):
    tp_app_id = uid("tt")
    result = invoke(tmp_path, "tp-app", "add", "--tp-app-id", tp_app_id, "--token-file", secret_file(tmp_path, "tok"),
                    "--aes-key-file", secret_file(tmp_path, new_aes_key()), "--platform", "douyin", "--dry-run")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dry_run"] is True
    assert stored_secret(settings().tp_app_secret(tp_app_id)) is None


# --- simulate callback -------------------------------------------------------------------------------

@dataclass
class Platform:
    """An HTTP server standing in for the API: records each POST and answers with a set status."""

    url: str
    status: int = 200
    answer: str = "success"
    received: list[tuple[str, dict]] = field(default_factory=list)


@pytest.fixture
def api() -> Iterator[Platform]:
    state = Platform(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.received.append((self.path, body))
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(state.answer.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def credentials() -> TpAppCredentials:
    creds = TpAppCredentials(tp_app_id=uid("tt"), token="simTok3n", aes_key=new_aes_key(), platform="douyin")
    put_tp_app(creds)
    return creds


def simulate(tmp_path, api, credentials, *args: str):
    return invoke(tmp_path, "simulate", "callback", "--tp-app-id", credentials.tp_app_id, "--url", api.url, *args)


def test_simulate_callback__sample_event__platform_signed_encrypted_body_posted_to_auth(tmp_path, api, credentials):
    # GIVEN a configured tp app and an API that answers `success`
    # WHEN the AUTHORIZED sample is simulated for one of its apps
    result = simulate(tmp_path, api, credentials, "--event", "AUTHORIZED", "--app-id", "tt0app0001")
    # THEN one POST went to the authorization URL and its answer was printed
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answers"] == [
        {"attempt": 1, "status": 200, "content_type": "text/plain", "body": "success"}]
    ((path, body),) = api.received
    assert path == f"/callbacks/{credentials.tp_app_id}/auth"
    assert set(body) == {"TimeStamp", "Nonce", "Encrypt", "MsgSignature"}
    # AND the signature is the platform's (checked by the test's own implementation of it)
    assert body["MsgSignature"] == sign_like_platform(credentials.token, body["TimeStamp"], body["Nonce"],
                                                      body["Encrypt"])
    # AND it decrypts to the sample, addressed to this tp app and that app
    event = json.loads(open_callback(credentials, body["TimeStamp"], body["Nonce"], body["Encrypt"],
                                     body["MsgSignature"]))
    assert (event["Event"], event["TpAppId"], event["AppId"]) == ("AUTHORIZED", credentials.tp_app_id, "tt0app0001")


def test_simulate_callback__review_event__posted_to_events(tmp_path, api, credentials):
    result = simulate(tmp_path, api, credentials, "--event", "PACKAGE_AUDIT")
    assert result.exit_code == 0, result.output
    ((path, body),) = api.received
    assert path == f"/callbacks/{credentials.tp_app_id}/events"
    event = json.loads(open_callback(credentials, body["TimeStamp"], body["Nonce"], body["Encrypt"],
                                     body["MsgSignature"]))
    assert event["AppId"] == SAMPLE_APP_ID


def test_simulate_callback__event_file_and_times__same_body_replayed(tmp_path, api, credentials):
    # GIVEN an event in a file (sent as it is) and --times 3
    event_file = tmp_path / "unknown.json"
    event_file.write_text(json.dumps({"Event": "SOMETHING_NEW", "AppId": "tt0app0002", "Note": "中文"}))
    result = simulate(tmp_path, api, credentials, "--event", str(event_file), "--times", "3")
    # THEN the identical body is posted three times (the platform's retries), to the events URL
    assert result.exit_code == 0, result.output
    assert [a["attempt"] for a in json.loads(result.stdout)["answers"]] == [1, 2, 3]
    bodies = [body for _, body in api.received]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert {path for path, _ in api.received} == {f"/callbacks/{credentials.tp_app_id}/events"}
    event = json.loads(open_callback(credentials, bodies[0]["TimeStamp"], bodies[0]["Nonce"], bodies[0]["Encrypt"],
                                     bodies[0]["MsgSignature"]))
    assert event == {"Event": "SOMETHING_NEW", "AppId": "tt0app0002", "Note": "中文"}


def test_simulate_callback__fresh__new_ciphertext_each_time(tmp_path, api, credentials):
    result = simulate(tmp_path, api, credentials, "--event", "PUSH", "--times", "2", "--fresh")
    assert result.exit_code == 0, result.output
    first, second = (body for _, body in api.received)
    assert first["Encrypt"] != second["Encrypt"]


def test_simulate_callback__verbose__shows_inputs_but_not_the_token(tmp_path, api, credentials):
    result = simulate(tmp_path, api, credentials, "--event", "UNAUTHORIZED", "--verbose",
                      "--timestamp", "1700000000", "--nonce", "424242")
    assert result.exit_code == 0, result.output
    body = api.received[0][1]
    assert (body["TimeStamp"], body["Nonce"]) == ("1700000000", "424242")
    assert '"Event": "UNAUTHORIZED"' in result.output
    assert "random prefix (32 bytes" in result.output
    assert f"sha1 = {body['MsgSignature']} (equals MsgSignature)" in result.output
    assert "<token>" in result.output and credentials.token not in result.output


def test_simulate_callback__error_answer__printed_and_exit_1(tmp_path, api, credentials):
    api.status, api.answer = 403, '{"code": "rejected"}'
    result = simulate(tmp_path, api, credentials, "--event", "PUSH")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["answers"] == [
        {"attempt": 1, "status": 403, "content_type": "text/plain", "body": '{"code": "rejected"}'}]
    assert "1 of 1 answers were not 2xx" in result.stderr


def test_simulate_callback__unknown_tp_app__error_names_the_fix(tmp_path, api):
    result = invoke(tmp_path, "simulate", "callback", "--tp-app-id", uid("tt"), "--event", "PUSH", "--url", api.url)
    assert result.exit_code == 1
    assert "rewardgate tp-app add" in result.output
    assert api.received == []


def test_simulate_callback__api_down__error_says_so(tmp_path, credentials):
    from rewardgate_ops.services import free_port

    result = invoke(tmp_path, "simulate", "callback", "--tp-app-id", credentials.tp_app_id, "--event", "PUSH",
                    "--url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1
    assert "cannot reach" in result.output


# --- local secrets files -----------------------------------------------------------------------------

def test_ensure_signing_key__first_start__owner_only_file_with_usable_key_then_reused(tmp_path):
    # WHEN the key is needed for the first time
    value, created = ensure_signing_key(tmp_path)
    # THEN it is generated into an owner-only file, and it signs tokens
    path = tmp_path / SECRETS_FILE
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == value
    assert set(value) == {"kid", "private_key"}
    key = key_from_secret(value)
    key.public_keys[value["kid"]].verify(key.private_key.sign(b"claims"), b"claims")
    # AND later starts reuse it
    assert ensure_signing_key(tmp_path) == (value, False)


def test_ensure_signing_key__corrupt_file__error_not_silently_replaced(tmp_path):
    (tmp_path / SECRETS_FILE).write_text('{"kid": "k", "private_key": "not-a-key"}')
    with pytest.raises(LocalSecretsError, match="delete it to generate a new one"):
        ensure_signing_key(tmp_path)
    assert json.loads((tmp_path / SECRETS_FILE).read_text())["private_key"] == "not-a-key"


@pytest.fixture
def keep_signing_key():
    """Seeding replaces the stage's signing key; put back what other tests' fixtures installed."""
    from chalicelib.secrets import put_secret_json

    before = stored_secret(settings().reward_token_secret)
    yield
    if before is not None:
        put_secret_json(settings().reward_token_secret, before)


def test_seed_secrets__key_and_remembered_tp_apps__in_secrets_manager(tmp_path, keep_signing_key):
    # GIVEN a remembered tp app in the state folder
    creds = TpAppCredentials(tp_app_id=uid("tt"), token="tok", aes_key=new_aes_key(), platform="douyin")
    remember_tp_app(tmp_path, creds.tp_app_id, json.loads(creds.to_json()))
    assert stat.S_IMODE((tmp_path / TP_APPS_FILE).stat().st_mode) == 0o600
    # WHEN the stack seeds Secrets Manager
    seeded = seed_secrets(tmp_path)
    # THEN the signing key is stored as in its file, and the tp app's credentials too
    key_file = json.loads((tmp_path / SECRETS_FILE).read_text())
    assert stored_secret(settings().reward_token_secret) == key_file
    assert stored_secret(settings().tp_app_secret(creds.tp_app_id)) == json.loads(creds.to_json())
    # AND interactive play's master key, generated into its own file
    play_key = json.loads((tmp_path / "play-key.json").read_text())
    assert stored_secret(play_settings().key_secret) == play_key
    assert set(seeded) == {settings().reward_token_secret, settings().tp_app_secret(creds.tp_app_id),
                           play_settings().key_secret}
