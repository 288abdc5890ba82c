"""Where an operator command acts: the running local stack, endpoints from the environment, or AWS.

The rule (docs/reference/cli.md):
- `--local`: the local stack found through its stack file (`.local/stack.json`, written by
  `rewardgate local up`); an error if it is not running. Endpoint variables in the environment are
  overridden, so a stale `export AWS_ENDPOINT_URL_...` cannot misdirect the command.
- `--aws`: real AWS, with credentials and region from the usual boto3 chain (profile, environment,
  SSO). Every `AWS_ENDPOINT_URL*` variable is dropped, and `--stage` (or `RG_STAGE`) is required:
  nothing ever writes to a deployed stage by default.
- neither: `AWS_ENDPOINT_URL*` in the environment wins (that is how the tests point commands
  somewhere; endpoints equal to the running local stack's, as `eval "$(rewardgate local env)"` sets
  them, count as the local stack); otherwise the local stack if it is up; otherwise an error that
  names both choices. The CLI never falls through to AWS by itself.

This module reads files and probes ports but imports nothing from `chalicelib`: command modules
resolve the target first and only then import code that caches settings or clients.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rewardgate_ops.errors import OpsError
from rewardgate_ops.services import LOCAL_CREDENTIALS, LOCAL_DIR, endpoint_environment, port_open

STACK_FILE = "stack.json"
LOCAL_STAGE = "local"
DEFAULT_API_URL = "http://127.0.0.1:8000"
# Variables that would mix a developer's real AWS identity into requests aimed at the local stack.
_AWS_IDENTITY_VARS = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class TargetError(OpsError, RuntimeError):
    """No usable target; the message tells the operator what to do."""


@dataclass
class ServiceRecord:
    """One process the local stack started: its port and process group (for leftover clean-up)."""

    port: int
    pgid: int
    url: str


@dataclass
class StackInfo:
    """What `rewardgate local up` writes to `<state-dir>/stack.json` once everything runs."""

    pid: int
    stage: str
    started_at: str
    api: ServiceRecord
    dynamodb: ServiceRecord
    moto: ServiceRecord
    data_dir: str
    logs_dir: str
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackInfo | None:
        """The stack file's content, or None when there is none (or it is unreadable)."""
        try:
            raw = json.loads(path.read_text())
            services = {k: ServiceRecord(**raw.pop(k)) for k in ("api", "dynamodb", "moto")}
            return cls(**raw, **services)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def answering(self) -> bool:
        """True when the stack's data services accept connections (the API may still be reloading)."""
        return port_open(self.dynamodb.port) and port_open(self.moto.port)

    def environment(self) -> dict[str, str]:
        """The endpoint environment for this stack's services."""
        return {**endpoint_environment(self.dynamodb.url, self.moto.url), "RG_STAGE": self.stage}


@dataclass(frozen=True)
class Target:
    """A resolved target: how to change the environment, and how to describe it to the operator."""

    kind: str  # "local" | "aws" | "env"
    stage: str
    description: str
    set_env: Mapping[str, str]
    unset_env: tuple[str, ...]
    # None for AWS: the API's URL is not known from the stage alone (it is a stack output).
    api_url: str | None = DEFAULT_API_URL

    def apply(self, environ: dict[str, str] | os._Environ[str]) -> None:
        """Make `environ` (normally `os.environ`) point boto3 and PynamoDB at this target."""
        for name in self.unset_env:
            environ.pop(name, None)
        environ.update(self.set_env)


def stack_file(state_dir: Path) -> Path:
    """Where the local stack in `state_dir` records what it runs."""
    return state_dir / STACK_FILE


def default_state_dir() -> Path:
    """`RG_LOCAL_DIR`, else the repository's `.local` (absolute, so any working directory finds it)."""
    return Path(os.environ.get("RG_LOCAL_DIR") or LOCAL_DIR)


def _endpoint_vars(env: Mapping[str, str]) -> list[str]:
    return sorted(k for k in env if k == "AWS_ENDPOINT_URL" or k.startswith("AWS_ENDPOINT_URL_"))


def live_stack(state_dir: Path) -> StackInfo | None:
    """The local stack recorded in `state_dir`, if its services answer now."""
    stack = StackInfo.load(stack_file(state_dir))
    return stack if stack is not None and stack.answering() else None


def local_target(stack: StackInfo | None, state_dir: Path, env: Mapping[str, str]) -> Target:
    """The running local stack (`stack`, None when it is not running), or a TargetError saying how to start it."""
    if stack is None:
        raise TargetError(
            f"the local stack is not running (no live {stack_file(state_dir)}); start it with `make run` "
            "(or `rewardgate local up`) in another terminal"
        )
    return Target(
        kind="local",
        stage=stack.stage,
        description=f"local stack (DynamoDB Local {stack.dynamodb.url}, moto {stack.moto.url})",
        set_env={**LOCAL_CREDENTIALS, **stack.environment()},
        unset_env=(*_endpoint_vars(env), *_AWS_IDENTITY_VARS),
        api_url=stack.api.url,
    )


def resolve_target(
    choice: str | None,
    stage: str | None,
    env: Mapping[str, str],
    state_dir: Path,
    stack: StackInfo | None,
) -> Target:
    """Decide where a command acts (see the module docstring for the rule).

    `stack` is the running local stack (see `live_stack`), None when there is none: this function does
    no I/O.
    """
    if choice == "local":
        if stage not in (None, LOCAL_STAGE):
            raise TargetError(f"the local stack serves stage {LOCAL_STAGE!r}, not {stage!r}; drop --stage")
        return local_target(stack, state_dir, env)
    if choice == "aws":
        if not stage:
            raise TargetError("--aws needs the stage to act on: pass --stage STAGE (or set RG_STAGE)")
        return Target(
            kind="aws",
            stage=stage,
            description=f"AWS stage {stage!r} (credentials and region from the AWS environment/profile)",
            # The CLI moves no money: it names no payout provider, which a deployed stage requires (settings).
            set_env={"RG_STAGE": stage, "RG_PAYOUT_PROVIDER": "none"},
            unset_env=tuple(_endpoint_vars(env)),
            api_url=None,
        )
    if choice is not None:
        raise ValueError(f"unknown target {choice!r}")
    endpoint_vars = _endpoint_vars(env)
    if stack is not None and endpoint_vars and all(
        env.get(k) == v for k, v in stack.environment().items() if k.startswith("AWS_ENDPOINT_URL")
    ):
        # `eval "$(rewardgate local env)"` was run: it is the local stack, and should be treated as such.
        return resolve_target("local", stage, env, state_dir, stack)
    if endpoint_vars:
        chosen = stage or LOCAL_STAGE
        shown = ", ".join(f"{k}={env[k]}" for k in endpoint_vars)
        return Target(
            kind="env",
            stage=chosen,
            description=f"endpoints from the environment ({shown}), stage {chosen!r}",
            # Like --aws, the CLI moves no money: a stage other than local names no payout provider itself.
            set_env={"RG_STAGE": chosen, **({} if chosen == LOCAL_STAGE or "RG_PAYOUT_PROVIDER" in env
                                            else {"RG_PAYOUT_PROVIDER": "none"})},
            unset_env=(),
        )
    if stack is not None:
        if stage not in (None, LOCAL_STAGE):
            raise TargetError(
                f"stage {stage!r} given but no --aws: the running local stack serves stage {LOCAL_STAGE!r}. "
                f"Pass --aws --stage {stage} to act on AWS."
            )
        return local_target(stack, state_dir, env)
    raise TargetError(
        "no target: the local stack is not running (start it with `make run`), and AWS was not chosen. "
        "Pass --aws --stage STAGE to act on a deployed stage."
    )


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (and may be signalled by us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_cmdline(pid: int) -> str | None:
    """The command line of a process (Linux /proc), or None when unknown."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return None
