"""Parts of `rewardgate local up`: code-change detection, leftover clean-up, the functions' environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from rewardgate_ops.local_stack import (
    SourceWatcher,
    StackError,
    chalice_environment,
    group_alive,
    reap_leftovers,
    source_files,
)
from rewardgate_ops.target import ServiceRecord, StackInfo, stack_file
from tests.conftest import ROOT


def test_source_watcher__file_modified_added_removed__reported_once(tmp_path):
    # GIVEN a watcher over two files
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("x = 1")
    b.write_text("y = 1")
    watched = [a, b]
    watcher = SourceWatcher(lambda: list(watched))
    assert watcher.changed() == []
    # WHEN one is modified THEN it is reported, once
    os.utime(a, (time.time() + 5, time.time() + 5))
    assert watcher.changed() == [a]
    assert watcher.changed() == []
    # WHEN one appears and one disappears THEN both are reported
    c.write_text("z = 1")
    watched.append(c)
    b.unlink()
    assert watcher.changed() == [b, c]


def test_source_files__repository__application_code_only():
    files = source_files(ROOT)
    assert ROOT / "app.py" in files and ROOT / ".chalice" / "config.json" in files
    assert any(p.parent == ROOT / "chalicelib" for p in files)
    # The stack's own state, the venv and the tests never count as application code.
    assert not any(part in (".local", ".venv", "tests") for p in files for part in p.relative_to(ROOT).parts)


def test_chalice_environment__stage__global_then_stage_values(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "environment_variables": {"A": "global", "B": "global"},
        "stages": {"local": {"environment_variables": {"B": "local", "C": 3}}},
    }))
    assert chalice_environment("local", config) == {"A": "global", "B": "local", "C": "3"}
    assert chalice_environment("prod", config) == {"A": "global", "B": "global"}


def test_chalice_environment__repository_config__local_stage_is_local():
    assert chalice_environment("local")["RG_STAGE"] == "local"


# --- leftovers --------------------------------------------------------------------------------------

def sleeper(*marker: str) -> subprocess.Popen:
    """A process in its own group whose command line carries `marker` (as a child of a stack would)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", *marker], start_new_session=True,
    )
    # A real leftover is an orphan that init reaps at once; a child of this test would linger as a
    # zombie (still "alive" to killpg) unless waited for.
    threading.Thread(target=process.wait, daemon=True).start()
    return process


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=10)
    return process.pid


def write_stack(state_dir, owner: int, api: int, ddb: int, moto: int, workers: int) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    record = lambda pgid: ServiceRecord(port=1, pgid=pgid, url="http://127.0.0.1:1")  # noqa: E731
    StackInfo(pid=owner, stage="local", started_at="t", api=record(api), dynamodb=record(ddb), moto=record(moto),
              data_dir="d", logs_dir="l", extra={"workers_pgid": workers}).save(stack_file(state_dir))


def test_reap_leftovers__owner_died__its_children_stopped_strangers_spared(tmp_path, processes):
    # GIVEN a stack file whose owner died, leaving chalice and the workers running,
    # and whose moto and DynamoDB slots now name a process that is not ours
    chalice = sleeper("rewardgate_ops.local_api", "--port")
    workers = sleeper("-m", "rewardgate_ops.local_workers")
    stranger = sleeper("something-else")
    processes += [chalice, workers, stranger]
    write_stack(tmp_path, dead_pid(), api=chalice.pid, ddb=stranger.pid, moto=stranger.pid, workers=workers.pid)
    # WHEN a new stack starts in that folder
    reaped = reap_leftovers(tmp_path)
    # THEN our leftovers are stopped, the stranger is not, and the stale stack file is gone
    assert sorted(r.split()[0] for r in reaped) == ["api", "workers"]
    assert chalice.wait(timeout=15) is not None and workers.wait(timeout=15) is not None
    assert not group_alive(chalice.pid) and not group_alive(workers.pid)
    assert stranger.poll() is None
    assert not stack_file(tmp_path).exists()


def test_reap_leftovers__owner_still_running__refused_and_nothing_stopped(tmp_path, processes):
    owner = sleeper("rewardgate", "local", "up")
    chalice = sleeper("rewardgate_ops.local_api", "--port")
    processes += [owner, chalice]
    write_stack(tmp_path, owner.pid, api=chalice.pid, ddb=chalice.pid, moto=chalice.pid, workers=chalice.pid)
    time.sleep(0.2)  # let the owner's command line be readable
    with pytest.raises(StackError, match="already running"):
        reap_leftovers(tmp_path)
    assert chalice.poll() is None
    assert stack_file(tmp_path).exists()


def test_reap_leftovers__no_stack_file__nothing_to_do(tmp_path):
    assert reap_leftovers(tmp_path) == []
