"""`rewardgate local up` when its start fails part-way: everything it started is stopped, and the next
start gets the ports back."""

from __future__ import annotations

import pytest

from rewardgate_ops import local_stack, services
from rewardgate_ops.local_stack import LocalStackOptions, run_forever
from rewardgate_ops.services import ServiceError, free_port, port_open

pytestmark = pytest.mark.own_stack


def test_local_up__start_fails_after_dynamodb__dynamodb_stopped_and_port_free(tmp_path, monkeypatch):
    # GIVEN a stack whose moto server fails to start, after DynamoDB Local is up
    options = LocalStackOptions(api_port=free_port(), dynamodb_port=free_port(), moto_port=free_port(),
                                state_dir=tmp_path, reload=False)
    started = {}
    real_start = services.start_dynamodb_local

    def start_dynamodb(port, **kwargs):
        started["dynamodb"] = real_start(port, **kwargs)
        return started["dynamodb"]

    def broken_moto(port, **_kwargs):
        raise ServiceError("moto server exited with 1 during start-up")

    monkeypatch.setattr(services, "start_dynamodb_local", start_dynamodb)
    monkeypatch.setattr(services, "start_moto_server", broken_moto)
    # WHEN the stack starts
    code = run_forever(options, echo=lambda _line: None)
    # THEN it fails, DynamoDB Local had started, and it is stopped with its port free for the next start
    assert code == 1
    assert "dynamodb" in started
    assert started["dynamodb"].process.poll() is not None
    assert not port_open(options.dynamodb_port)
    assert not (tmp_path / "stack.json").exists()


def test_local_up__start_interrupted_in_provisioning__every_child_stopped(tmp_path, monkeypatch):
    # GIVEN a stack whose provisioning fails (both data services are up by then)
    options = LocalStackOptions(api_port=free_port(), dynamodb_port=free_port(), moto_port=free_port(),
                                state_dir=tmp_path, reload=False)

    def broken_provision(self):
        raise RuntimeError("CreateTable failed")

    monkeypatch.setattr(local_stack.LocalStack, "_provision", broken_provision)
    # WHEN it starts THEN it fails and neither data service is left running
    assert run_forever(options, echo=lambda _line: None) == 1
    assert not port_open(options.dynamodb_port)
    assert not port_open(options.moto_port)


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    # the stack points this process's environment at its services; leave the session's untouched
    import os

    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from chalicelib import process_state

    process_state.reset()


KILLED_MID_START = """
import os, signal, sys
from pathlib import Path
from rewardgate_ops import services
from rewardgate_ops.local_stack import LocalStackOptions, run_forever

def die(port, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the supervisor dies with DynamoDB Local running

services.start_moto_server = die
state, api, ddb, moto = sys.argv[1], *map(int, sys.argv[2:])
run_forever(LocalStackOptions(api_port=api, dynamodb_port=ddb, moto_port=moto, state_dir=Path(state), reload=False))
"""


def test_local_up__supervisor_killed_mid_start__next_start_stops_its_leftovers(tmp_path):
    import subprocess
    import sys

    from rewardgate_ops.local_stack import reap_leftovers
    from tests.conftest import ROOT

    # GIVEN a supervisor killed (SIGKILL: no chance to clean up) right after DynamoDB Local started
    ports = [free_port(), free_port(), free_port()]
    run = subprocess.run([sys.executable, "-c", KILLED_MID_START, str(tmp_path), *map(str, ports)], cwd=ROOT,
                         capture_output=True, timeout=120, check=False)
    assert run.returncode == -9, run.stderr[-2000:]
    assert port_open(ports[1])  # DynamoDB Local outlived it
    # WHEN the next start looks for leftovers THEN it finds and stops that DynamoDB Local: the port is free
    reaped = reap_leftovers(tmp_path)
    assert [r.split()[0] for r in reaped] == ["dynamodb"]
    assert not port_open(ports[1])
