"""The local stack's Lambda stand-in for event sources: SQS workers and schedules, in one child process.

`rewardgate local up` starts this module as a child (`python -m rewardgate_ops.local_workers LOGS_DIR`)
with the stack's endpoint environment: one thread per `@app.on_sqs_message` (the event-source loop)
and one per `@app.schedule` (the scheduler). Being a process of its own, it can be restarted with fresh
code when the application changes, and an import error in the application stops only this child.
SIGTERM or SIGINT stops it, letting a running handler finish for a few seconds.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardgate_ops.event_source import SqsWorker, resolve_handler, start_worker_thread, worker_for
from rewardgate_ops.scheduler import ScheduledJob, start_schedule_thread
from rewardgate_ops.services import ROOT

log = logging.getLogger("rewardgate_ops.local")

# Scheduled functions get Chalice's default Lambda timeout unless configured otherwise.
SCHEDULE_TIMEOUT_S = 60
JOIN_GRACE_S = 5


@dataclass
class Runners:
    """What runs an application's event sources locally, and what cannot."""

    workers: list[SqsWorker] = field(default_factory=list)
    jobs: list[ScheduledJob] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_app() -> Any:
    """The Chalice application object of `app.py` (imported fresh in this process)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("app").app


def build_runners(app: Any, sqs: Any) -> Runners:
    """A worker per SQS event source (queues looked up on `sqs`) and a job per schedule."""
    from chalice.app import ScheduledEventConfig, SQSEventConfig

    from chalicelib.queues import ALL_QUEUES

    timeouts = {spec.name: spec.worker_timeout_s for spec in ALL_QUEUES}
    runners = Runners()
    for config in app.event_sources:
        if isinstance(config, SQSEventConfig):
            runners.workers.append(worker_for(config, sqs, timeouts))
        elif isinstance(config, ScheduledEventConfig):
            runners.jobs.append(ScheduledJob(
                name=config.name, expression=config.schedule_expression,
                handler=resolve_handler(config.handler_string), handler_string=config.handler_string,
                timeout_s=SCHEDULE_TIMEOUT_S,
            ))
        else:
            runners.skipped.append(f"{config.name} ({type(config).__name__})")
    return runners


def configure_logging(log_file: Path) -> None:
    """This process's own lines to the console and `log_file`; the handlers' (Powertools JSON) to the file too."""
    from chalicelib.observability import logger as app_logger

    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    to_file = logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
    log.addHandler(console)
    log.addHandler(to_file)
    app_file = logging.FileHandler(log_file)
    app_file.setFormatter(app_logger.registered_formatter)
    logging.getLogger(app_logger.name).addHandler(app_file)


def run(logs_dir: Path) -> int:
    """Run every event source of `app.py` until SIGTERM/SIGINT; the exit code for the parent."""
    configure_logging(logs_dir / "workers.log")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        from chalicelib.clients import sqs

        runners = build_runners(load_app(), sqs())
    except Exception:
        log.exception("workers: the application's event sources could not be loaded")
        return 1
    for skipped in runners.skipped:
        log.warning("event source %s has no local runner; it will not fire locally", skipped)
    threads = [start_worker_thread(w, sqs(), stop) for w in runners.workers]
    threads += [start_schedule_thread(j, stop) for j in runners.jobs]
    log.info("workers: %d SQS worker(s) and %d schedule(s) running", len(runners.workers), len(runners.jobs))
    while not stop.wait(1):
        pass
    deadline = time.monotonic() + max((w.poll_wait_s for w in runners.workers), default=0) + JOIN_GRACE_S
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s is still running a handler; leaving it behind as the process exits", thread.name)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
