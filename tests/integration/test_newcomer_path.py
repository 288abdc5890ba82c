"""A newcomer's path: start the stack as `make run` does, add a tp app, send one callback, see it applied.

Everything goes through the `rewardgate` console script in subprocesses and plain HTTP, as a developer
would type it, on free ports and a temporary state folder (data, logs, secrets, stack.json). Stopping
the stack with SIGINT (Ctrl-C) must leave no process of it behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rewardgate_ops.sample_events import sample_event
from rewardgate_ops.services import free_port
from tests.callback_factory import new_aes_key
from tests.conftest import ROOT, uid

pytestmark = [pytest.mark.slow, pytest.mark.own_stack]

REWARDGATE = Path(sys.executable).with_name("rewardgate")
START_TIMEOUT_S = 120
APPLY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 40


@dataclass
class Stack:
    process: subprocess.Popen
    state_dir: Path
    output: Path
    api: str

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run `rewardgate --local --state-dir ... <args>` the way an operator would."""
        return subprocess.run(
            [str(REWARDGATE), "--local", "--state-dir", str(self.state_dir), *args], input=stdin,
            capture_output=True, text=True, timeout=120, env=clean_env(), cwd=ROOT, check=False,
        )

    def log_tail(self) -> str:
        return self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""


def clean_env() -> dict[str, str]:
    """The developer's environment: no endpoint variables (the test session's own stack sets some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def http_get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def answers(url: str) -> bool:
    try:
        http_get(url)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    return True


@pytest.fixture
def stack(tmp_path) -> Iterator[Stack]:
    assert REWARDGATE.exists(), f"{REWARDGATE} missing: the venv must have the console script (make test installs it)"
    state_dir = tmp_path / "state"
    output = tmp_path / "local-up.out"
    api_port, ddb_port, moto_port, ws_port = free_port(), free_port(), free_port(), free_port()
    with output.open("wb") as out:
        # What `make run` runs, plus ports and a state folder of the test's own, and --no-reload: the
        # test must not depend on nobody saving a file in the repository while it runs.
        process = subprocess.Popen(
            [str(REWARDGATE), "--state-dir", str(state_dir), "local", "up", "--api-port", str(api_port),
             "--ws-port", str(ws_port), "--dynamodb-port", str(ddb_port), "--moto-port", str(moto_port), "--no-reload"],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=ROOT, start_new_session=True,
        )
    running = Stack(process, state_dir, output, f"http://127.0.0.1:{api_port}")
    recorded: list[int] = []
    try:
        yield running
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            recorded = list(process_groups(json.loads((state_dir / "stack.json").read_text())).values())
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # Whatever the test's outcome, nothing it started may outlive it.
        for pgid in recorded:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def process_groups(info: dict) -> dict[str, int]:
    """Every process group the stack file says the stack started."""
    return {**{name: info[name]["pgid"] for name in ("api", "dynamodb", "moto")},
            "workers": info["extra"]["workers_pgid"]}


def wait_until_up(stack: Stack) -> dict:
    deadline = time.monotonic() + START_TIMEOUT_S
    stack_file = stack.state_dir / "stack.json"
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            pytest.fail(f"`rewardgate local up` exited with {stack.process.returncode}:\n{stack.log_tail()}")
        if stack_file.exists() and answers(f"{stack.api}/v1/tp-apps/nobody/events"):
            return json.loads(stack_file.read_text())
        time.sleep(0.5)
    pytest.fail(f"the local stack did not answer within {START_TIMEOUT_S}s:\n{stack.log_tail()}")


def test_newcomer_path__make_run_add_tp_app_simulate_callback__applied_then_clean_stop(stack):
    # GIVEN the local stack started the way `make run` starts it
    info = wait_until_up(stack)
    started = stack.output.read_text()
    for heading in ("ENDPOINTS", "TABLES", "QUEUES", "WORKERS", "SCHEDULES", "SECRETS"):
        assert heading in started, started
    assert stack.api in started

    # WHEN a developer adds a tp app and plays one AUTHORIZED callback through the CLI
    tp_app_id, app_id = uid("tt"), uid("tt")
    key_file = stack.state_dir / "aes-key.txt"
    key_file.write_text(new_aes_key())
    added = stack.cli("tp-app", "add", "--tp-app-id", tp_app_id, "--token-file", "-", "--aes-key-file",
                      str(key_file), "--platform", "douyin", stdin="newcomerToken\n")
    assert added.returncode == 0, added.stdout + added.stderr
    sent = stack.cli("simulate", "callback", "--tp-app-id", tp_app_id, "--event", "AUTHORIZED", "--app-id", app_id,
                     "--output", "json")
    assert sent.returncode == 0, sent.stdout + sent.stderr + stack.log_tail()
    assert json.loads(sent.stdout)["answers"] == [
        {"attempt": 1, "status": 200, "content_type": "text/plain", "body": "success"}]

    # THEN the event is stored and, through the events queue and the local worker, applied
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    events: list = []
    while time.monotonic() < deadline:
        status, listing = http_get(f"{stack.api}/v1/tp-apps/{tp_app_id}/events")
        assert status == 200, listing
        events = listing["items"]
        if events and events[0]["status"] == "APPLIED":
            break
        time.sleep(0.5)
    assert [(e["event_type"], e["status"], e["app_id"]) for e in events] == [("AUTHORIZED", "APPLIED", app_id)], (
        f"{events}\n{stack.log_tail()}")
    # AND the app's state shows the authorization the callback carried
    status, state = http_get(f"{stack.api}/v1/tp-apps/{tp_app_id}/apps/{app_id}")
    assert status == 200, state
    assert state["authorization"]["event_type"] == "AUTHORIZED"
    assert state["authorization"]["data"]["status"] == "AUTHORIZED"
    assert sample_event("AUTHORIZED")["AppName"] in json.dumps(state, ensure_ascii=False)
    # AND other tools can be pointed at the stack
    exported = stack.cli("local", "env")
    assert exported.returncode == 0, exported.stderr
    assert f"export RG_API_URL={stack.api}" in exported.stdout

    # WHEN the developer presses Ctrl-C
    stack.process.send_signal(signal.SIGINT)
    code = stack.process.wait(timeout=STOP_TIMEOUT_S)
    # THEN the stack exits cleanly, every process it started is gone, and its stack file with them
    assert code == 0, stack.log_tail()
    groups = process_groups(info)
    assert set(groups) == {"api", "dynamodb", "moto", "workers"}
    assert {name: group_alive(pgid) for name, pgid in groups.items()} == dict.fromkeys(groups, False)
    assert not group_alive(stack.process.pid)
    assert not (stack.state_dir / "stack.json").exists()
    # AND the data and the local secrets stay for the next start
    assert (stack.state_dir / "data" / "shared-local-instance.db").exists()
    assert {"secrets.json", "tp-apps.json"} <= {p.name for p in stack.state_dir.iterdir()}
