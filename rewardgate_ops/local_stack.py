"""`rewardgate local up`: the whole application on one laptop, started and stopped as one thing.

This process supervises four children, each in its own process group (stopping a group stops
everything it spawned):
- DynamoDB Local, persisted under the data dir (a restart keeps the data);
- moto's server for SQS and Secrets Manager (in memory: queues and secrets are re-created and
  re-seeded at every start);
- the API server (`rewardgate_ops.local_api`: a threaded server with a deep backlog in front of the
  same Chalice app, answering the gateway's own refusals as problem+json), which also serves the
  WebSocket API (`rewardgate_ops.local_ws`: API Gateway's `$connect`/`$default`/`$disconnect` and
  `@connections`, emulated, calling the app's WebSocket handlers);
- `rewardgate_ops.local_workers`: the event-source loop (a thread per `@app.on_sqs_message`) and the
  scheduler (a thread per `@app.schedule`).

Tables and queues come from the deploy template's definitions (`infra.provision`). When the
application's code changes (`app.py`, `chalicelib/`, `.chalice/config.json`), the API and the workers
are restarted with the new code; the data services keep running. Chalice's own autoreload is not
used: it polls every file under the project (the venv, node_modules, and this stack's logs and data
in `.local/`), so the stack's own writes would restart it in a loop.

The stack records what it runs in `<state-dir>/stack.json` from the moment its first child starts
(`starting: true` until all run); operator commands find a running stack there, and the next start
uses it to stop children left behind by a run that was killed without a chance to — even one killed
half-way through its start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets as secrets_module
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewardgate_ops import services
from rewardgate_ops.errors import OpsError
from rewardgate_ops.local_api import BACKLOG
from rewardgate_ops.local_workers import Runners, build_runners, configure_logging, load_app
from rewardgate_ops.scheduler import describe
from rewardgate_ops.services import ROOT, Service, ServiceError
from rewardgate_ops.target import (
    LOCAL_STAGE,
    ServiceRecord,
    StackInfo,
    pid_alive,
    process_cmdline,
    stack_file,
)

log = logging.getLogger("rewardgate_ops.local")

CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
# Variables that would mix a developer's real AWS identity or endpoints into the local stack.
_FOREIGN_AWS_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")
WORKERS_MODULE = "rewardgate_ops.local_workers"


class StackError(OpsError, RuntimeError):
    """The stack cannot start or stopped working; the message says what to do."""


@dataclass
class LocalStackOptions:
    """Ports and folders of one local stack."""

    api_port: int = 8000
    ws_port: int = 8003
    dynamodb_port: int = 8001
    moto_port: int = 8002
    state_dir: Path = services.LOCAL_DIR
    data_dir: Path | None = None
    reload: bool = True

    @property
    def data_path(self) -> Path:
        """Where DynamoDB Local keeps its data."""
        return self.data_dir or self.state_dir / "data"

    @property
    def logs_dir(self) -> Path:
        """Where every service's log goes."""
        return self.state_dir / "logs"


def chalice_environment(stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, str]:
    """The environment variables `.chalice/config.json` gives a stage's functions (global, then stage)."""
    config = json.loads(config_path.read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config.get("stages", {}).get(stage, {}).get("environment_variables", {}))
    return {k: str(v) for k, v in env.items()}


# --- watching the application's code ------------------------------------------------------------------

def source_files(root: Path = ROOT) -> list[Path]:
    """The files whose change means new application code: app.py, chalicelib/**/*.py, the Chalice config."""
    return [root / "app.py", root / ".chalice" / "config.json", *sorted((root / "chalicelib").rglob("*.py"))]


class SourceWatcher:
    """Notices when the application's source files change (mtime polling; a handful of files)."""

    def __init__(self, files: Callable[[], list[Path]] = source_files) -> None:
        self._files = files
        self._seen = self._snapshot()

    def _snapshot(self) -> dict[Path, float]:
        stamps = {}
        for path in self._files():
            with contextlib.suppress(OSError):
                stamps[path] = path.stat().st_mtime
        return stamps

    def changed(self) -> list[Path]:
        """The files added, removed or modified since the last call."""
        now = self._snapshot()
        changed = sorted(p for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p))
        self._seen = now
        return changed


# --- leftovers of a killed run ------------------------------------------------------------------------

# What each recorded process group's leader runs, to recognise our own leftovers (and nothing else).
API_MODULE = "rewardgate_ops.local_api"
_LEFTOVER_MARKERS = {"api": API_MODULE, "moto": "moto.server", "dynamodb": "DynamoDBLocal", "workers": WORKERS_MODULE}


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_group(pgid: int, grace_s: float = 10) -> None:
    """SIGTERM a process group we did not spawn in this run, then SIGKILL it after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def reap_leftovers(state_dir: Path) -> list[str]:
    """Stop the children of a previous run that died without stopping them; refuse if it still runs."""
    path = stack_file(state_dir)
    info = StackInfo.load(path)
    if info is None:
        return []
    if pid_alive(info.pid) and "rewardgate" in (process_cmdline(info.pid) or ""):
        raise StackError(
            f"a local stack is already running from {state_dir} (pid {info.pid}, API {info.api.url}); "
            f"stop it with Ctrl-C in its terminal or `kill -INT {info.pid}`"
        )
    groups = {name: getattr(info, name).pgid for name in ("api", "dynamodb", "moto")}
    if "workers_pgid" in info.extra:
        groups["workers"] = int(info.extra["workers_pgid"])
    reaped = []
    for name, pgid in groups.items():
        if pgid > 0 and _LEFTOVER_MARKERS[name] in (process_cmdline(pgid) or ""):
            stop_process_group(pgid)
            reaped.append(f"{name} (process group {pgid})")
    path.unlink(missing_ok=True)
    return reaped


# --- the stack ----------------------------------------------------------------------------------------

@dataclass
class LocalStack:
    """The running local stack; `start()`, then `wait()`, and always `stop()`."""

    options: LocalStackOptions
    services: dict[str, Service] = field(default_factory=dict)
    runners: Runners = field(default_factory=Runners)
    interrupted: threading.Event = field(default_factory=threading.Event)
    summary: dict[str, Any] = field(default_factory=dict)
    app: Any = None

    # --- start -----------------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        # Signals only set a flag (see `run_forever`), so a Ctrl-C never lands between spawning a child
        # and recording it; this is where it takes effect during start-up.
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def start(self) -> None:
        """Start everything, in dependency order; on any failure the caller's `stop()` cleans up."""
        opts = self.options
        ports = {"API": opts.api_port, "WebSocket API": opts.ws_port, "DynamoDB Local": opts.dynamodb_port,
                 "moto": opts.moto_port}
        if len(set(ports.values())) != len(ports):
            raise StackError(f"the ports must differ: {ports}")
        opts.logs_dir.mkdir(parents=True, exist_ok=True)
        configure_logging(opts.logs_dir / "stack.log")
        for reaped in reap_leftovers(opts.state_dir):
            log.warning("stopped %s left over from a previous run that did not shut down", reaped)
        busy = [f"{name} port {port}" for name, port in ports.items() if services.port_open(port)]
        if busy:
            raise StackError(f"already in use: {', '.join(busy)}; stop what holds it or choose other ports")

        log.info("starting DynamoDB Local on port %d (data in %s)", opts.dynamodb_port, opts.data_path)
        # Nothing unauthenticated may be reachable from other machines or users: both services run privately,
        # or the stack refuses to start unless the developer accepts the exposure (RG_LOCAL_ALLOW_EXPOSED=1).
        private = None if os.environ.get("RG_LOCAL_ALLOW_EXPOSED") == "1" else True
        self.services["dynamodb"] = services.start_dynamodb_local(
            opts.dynamodb_port, data_dir=opts.data_path, log_path=opts.logs_dir / "dynamodb.log", private=private
        )
        self._record(starting=True)
        self._checkpoint()
        log.info("starting moto server on port %d", opts.moto_port)
        self.services["moto"] = services.start_moto_server(opts.moto_port, log_path=opts.logs_dir / "moto.log",
                                                           private=private)
        self._record(starting=True)
        self._checkpoint()

        self._point_environment_here()
        self._provision()
        self._checkpoint()
        self._describe_app()
        self._start_workers()
        self._record(starting=True)
        self._checkpoint()
        self._start_api()
        self._checkpoint()
        self._record()

    def _point_environment_here(self) -> None:
        """Make this process and its children use the local services, with the functions' config."""
        from chalicelib import process_state

        for name in _FOREIGN_AWS_VARS:
            os.environ.pop(name, None)
        os.environ.update(chalice_environment(LOCAL_STAGE))
        os.environ.update(
            services.endpoint_environment(self.services["dynamodb"].endpoint, self.services["moto"].endpoint)
        )
        os.environ.update({"RG_STAGE": LOCAL_STAGE, "PYTHONUNBUFFERED": "1"})
        # Live push: the wss_link a start answers, and where the workers post to connections (@connections).
        os.environ.setdefault("RG_PLAY_WSS_LINKS", self.ws_url)
        os.environ["RG_LIVE_CONNECTIONS_URL"] = f"http://127.0.0.1:{self.options.api_port}"
        # @connections answers only this stack's own processes (the API and the workers inherit it).
        os.environ["RG_LIVE_CONNECTIONS_TOKEN"] = secrets_module.token_urlsafe(32)
        process_state.reset()  # every cache was built on the previous endpoints

    def _provision(self) -> None:
        import boto3

        from infra.provision import drop_old_layout, old_layout_message, provision_queues, provision_tables
        from infra.template import data_resources
        from rewardgate_ops.local_secrets import seed_secrets

        dropped = drop_old_layout(boto3.client("dynamodb"), LOCAL_STAGE)
        if dropped:
            log.warning(old_layout_message(dropped, self.options.data_path))
        created = provision_tables(boto3.client("dynamodb"), LOCAL_STAGE)
        provision_queues(boto3.client("sqs"), LOCAL_STAGE)
        resources = data_resources(LOCAL_STAGE)
        props = {lid: r["Properties"] for lid, r in resources.items()}
        tables = sorted(p["TableName"] for lid, p in props.items() if resources[lid]["Type"] == "AWS::DynamoDB::Table")
        queues = []
        for p in props.values():
            redrive = p.get("RedrivePolicy")
            if redrive is not None:
                dlq = props[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]["QueueName"]
                queues.append((p["QueueName"], dlq, redrive["maxReceiveCount"], p.get("VisibilityTimeout")))
        self.summary["tables"] = [(t, "created" if t in created else "kept") for t in tables]
        self.summary["queues"] = sorted(queues)
        self.summary["secrets"] = seed_secrets(self.options.state_dir)

    def _describe_app(self) -> None:
        """Load the app here too: to fail fast on a broken one, and to print its routes and event sources."""
        import boto3

        self.app = load_app()
        self.runners = build_runners(self.app, boto3.client("sqs"))

    def _start_workers(self) -> None:
        opts = self.options
        log_path = opts.logs_dir / "workers.log"
        # Output stays on the terminal (the worker lines are what a developer watches) and in workers.log.
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", WORKERS_MODULE, str(opts.logs_dir)], cwd=ROOT, start_new_session=True,
        )
        self.services["workers"] = Service(name="workers", port=0, process=process, log_path=log_path)

    @property
    def ws_url(self) -> str:
        """The WebSocket API's address."""
        return f"ws://127.0.0.1:{self.options.ws_port}"

    def _start_api(self) -> None:
        opts = self.options
        args = [sys.executable, "-m", API_MODULE, "--host", "127.0.0.1", "--port", str(opts.api_port),
                "--ws-port", str(opts.ws_port)]
        log.info("starting the API server on port %d (WebSocket API on port %d)", opts.api_port, opts.ws_port)
        # services' spawn/wait give the API the same process-group handling as the other children.
        service = services.spawn("API server", args, opts.api_port, opts.logs_dir / "api.log", cwd=ROOT)
        self.services["api"] = service
        services.wait_for_port(service, timeout_s=60)
        if not services.port_open(opts.ws_port):
            services.wait_for_port(services.Service("WebSocket API", opts.ws_port, service.process,
                                                    service.log_path), timeout_s=30)

    def _record(self, starting: bool = False) -> None:
        """Write the stack file: while `starting`, with what has started so far (port 0: not yet)."""
        opts = self.options
        none = ServiceRecord(port=0, pgid=0, url="")
        records = {
            name: ServiceRecord(port=s.port, pgid=s.process.pid, url=s.endpoint)
            for name, s in self.services.items() if name != "workers"
        }
        workers = self.services.get("workers")
        StackInfo(
            pid=os.getpid(), stage=LOCAL_STAGE, started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            api=records.get("api", none), dynamodb=records.get("dynamodb", none), moto=records.get("moto", none),
            data_dir=str(opts.data_path), logs_dir=str(opts.logs_dir),
            extra={"workers_pgid": workers.process.pid if workers else 0, "starting": starting, "ws_url": self.ws_url},
        ).save(stack_file(opts.state_dir))

    # --- run -------------------------------------------------------------------------------------

    def wait(self) -> None:
        """Serve until interrupted (returns); restart the app's processes on code changes (with reload).

        A data service dying ends the stack (StackError). Without reload, so does the API or the
        workers dying; with reload, the stack says so and waits for the code to change.
        """
        watcher = SourceWatcher() if self.options.reload else None
        reported: set[str] = set()
        while not self.interrupted.wait(0.5):
            if watcher is not None:
                changed = watcher.changed()
                if changed:
                    self._reload(watcher, changed)
                    reported.clear()
            for name, service in self.services.items():
                code = service.process.poll()
                if code is None or name in reported:
                    continue
                message = f"{service.name} exited with code {code}; see {service.log_path}"
                if watcher is None or name in ("dynamodb", "moto"):
                    raise StackError(f"{message}. Stopping everything.")
                log.error("%s. Fix the code: it restarts on the next change.", message)
                reported.add(name)

    def _reload(self, watcher: SourceWatcher, changed: list[Path]) -> None:
        # Editors save in several steps; let them finish before starting the new code.
        while not self.interrupted.wait(0.5) and watcher.changed():
            pass
        shown = ", ".join(_show(p) for p in changed[:3]) + (" ..." if len(changed) > 3 else "")
        log.info("code changed (%s): restarting the API, the workers and the schedules", shown)
        for name in ("api", "workers"):
            self._stop_service(name)
        self._start_workers()
        try:
            self._start_api()
        except ServiceError as exc:
            log.error("the API did not restart: %s", exc)
        self._record()

    # --- stop ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child this stack started, whatever state `start()` reached."""
        for name in ("api", "workers", "moto", "dynamodb"):
            if name in self.services:
                self._stop_service(name)
        with contextlib.suppress(OSError):
            info = StackInfo.load(stack_file(self.options.state_dir))
            if info is not None and info.pid == os.getpid():
                stack_file(self.options.state_dir).unlink()

    def _stop_service(self, name: str) -> None:
        service = self.services[name]
        try:
            service.stop()
        except Exception:
            log.exception("could not stop %s (process group %d)", service.name, service.process.pid)

    # --- describe --------------------------------------------------------------------------------

    def table(self) -> str:
        """What runs where, for the terminal."""
        opts = self.options
        api = self.services["api"].endpoint
        workers_pid = self.services["workers"].process.pid
        reload_note = "restart when app.py, chalicelib/ or .chalice/config.json change" if opts.reload else "no reload"
        rows: list[str] = [
            f"rewardgate local stack · stage {LOCAL_STAGE} · pid {os.getpid()} · Ctrl-C stops everything",
            "",
            *_columns([
                ("SERVICE", "ADDRESS", "LOG / DATA"),
                ("API (rewardgate_ops.local_api)", api, f"{_show(opts.logs_dir / 'api.log')} · threaded, backlog "
                 f"{BACKLOG} · {reload_note}"),
                ("WebSocket API (rewardgate_ops.local_ws)", self.ws_url,
                 f"same process as the API · @connections at {api}/@connections/{{id}} · live push"),
                ("DynamoDB Local", self.services["dynamodb"].endpoint,
                 f"{_show(opts.logs_dir / 'dynamodb.log')} · data {_show(opts.data_path)} (kept across restarts)"),
                ("moto (SQS, Secrets)", self.services["moto"].endpoint,
                 f"{_show(opts.logs_dir / 'moto.log')} · in memory, re-created at each start"),
                ("workers, schedules", f"process {workers_pid}", f"{_show(opts.logs_dir / 'workers.log')} · "
                 f"{reload_note}"),
                ("this supervisor", f"process {os.getpid()}", _show(opts.logs_dir / "stack.log")),
            ]),
            "",
            "ENDPOINTS",
            *_columns(_routes(self.app, api) or [("(no routes)",)]),
            *_columns([("WS", f"{self.ws_url}?auth_body=<from /v2/app/start>", "$connect / $default / $disconnect")]),
            "",
            "TABLES",
            *_columns([(name, state) for name, state in self.summary["tables"]]),
            "",
            "QUEUES",
            *_columns([("QUEUE", "DEAD-LETTER QUEUE", "MAX RECEIVES", "VISIBILITY")]
                      + [(q, d, str(m), f"{v}s") for q, d, m, v in self.summary["queues"]]),
            "",
            "WORKERS (SQS event sources)",
            *_columns([(w.name, f"← {w.queue_name}", f"batch {w.batch_size}", f"window {w.batching_window_s:g}s",
                        w.handler_string) for w in self.runners.workers] or [("(none)",)]),
            "",
            "SCHEDULES (UTC)",
            *_columns([(j.name, describe(j.expression, datetime.now(UTC)), j.handler_string)
                       for j in self.runners.jobs] or [("(none)",)]),
            *(["", "NOT RUN LOCALLY", *_columns([(s,) for s in self.runners.skipped])] if self.runners.skipped else []),
            "",
            "SECRETS (moto Secrets Manager)",
            *_columns(sorted(self.summary["secrets"].items())),
            "",
            "Operator commands target this stack by themselves (rewardgate tp-app add, rewardgate simulate callback).",
            'Other tools: eval "$(rewardgate local env)" points the AWS CLI and boto3 here.',
        ]
        return "\n".join(rows)


def _show(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def _routes(app: Any, base: str) -> list[tuple[str, ...]]:
    return [(method, f"{base}{path}") for path, methods in sorted(app.routes.items()) for method in sorted(methods)]


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(len(r) for r in rows))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def run_forever(options: LocalStackOptions, echo: Callable[[str], Any] = print) -> int:
    """Start the stack, print what runs where, serve until SIGINT/SIGTERM/SIGHUP; return the exit code."""
    stack = LocalStack(options)

    def _on_signal(signum: int, _frame: Any) -> None:
        if not stack.interrupted.is_set():
            log.info("%s received: stopping everything", signal.Signals(signum).name)
        stack.interrupted.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        stack.start()
        echo(stack.table())
        log.info("ready")
        stack.wait()
    except KeyboardInterrupt:
        pass
    except (StackError, ServiceError) as exc:
        log.error("%s", exc)
        code = 1
    except Exception:
        log.exception("the local stack failed")
        code = 1
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")
    return code
