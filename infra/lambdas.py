"""The Lambda functions Chalice builds from `app.py`, with their settings from `.chalice/config.json`.

This is read from the app object itself (its routes and event sources), not re-declared, so a new
`@on_sqs_message` or `@schedule` handler shows up here, and in the checks, without anyone listing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.app import Chalice, ScheduledEventConfig, SQSEventConfig
from chalice.config import Config
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT
from chalice.utils import to_cfn_resource_name

from chalicelib.queues import ALL_QUEUES, QueueSpec
from chalicelib.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
API_HANDLER = "api_handler"
# Chalice renames the API function's resource to this logical id.
API_HANDLER_LOGICAL_ID = "APIHandler"


@dataclass(frozen=True)
class LambdaFunction:
    """One deployed function: its Chalice name, CloudFormation id and effective settings for a stage."""

    name: str
    logical_id: str
    kind: str  # "api", "sqs", "schedule" or "websocket"
    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None
    architecture: str
    log_retention_days: int | None
    queue: QueueSpec | None = None  # the queue whose event source triggers it

    def physical_name(self, stage: str) -> str:
        """The function's name in AWS (set explicitly, so alarms and log groups can name it)."""
        return f"rewardgate-{stage}-{self.name}"

    @property
    def sqs_event_id(self) -> str:
        """Logical id of the SAM SQS event Chalice generates for this function."""
        return to_cfn_resource_name(f"{self.name}-sqs-event-source")

    @property
    def log_group_id(self) -> str:
        """Logical id of the log group Chalice generates when `log_retention_in_days` is set."""
        return to_cfn_resource_name(f"{self.name}-log-group")

    @property
    def chalice_managed(self) -> bool:
        """Whether `chalice package` emits this function (the callback function it does not)."""
        return self.name != "callback_handler"

    @property
    def role_id(self) -> str:
        """Logical id of the function's own IAM role (defined by `infra.iam`)."""
        return f"{self.logical_id}Role"


def load_app() -> Chalice:
    """The Chalice application object from `app.py`."""
    import app  # the project root is on sys.path for `python -m infra...`, pytest and chalice alike

    return app.app


def config_on_disk() -> dict[str, Any]:
    """`.chalice/config.json` as written."""
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def configured_stages() -> list[str]:
    """The stages `.chalice/config.json` defines (each sets RG_STAGE and its names)."""
    return sorted(config_on_disk().get("stages", {}))


def chalice_config(stage: str, function_name: str) -> Config:
    """Chalice's own view of `.chalice/config.json` for one function in one stage."""
    return Config(chalice_stage=stage, function_name=function_name, config_from_disk=config_on_disk(),
                  user_provided_params={"project_dir": str(ROOT)})


def deployed_settings(stage: str, function_name: str) -> Settings:
    """The settings one function of `stage` reads in AWS: `.chalice/config.json`'s variables, not this shell's."""
    return load_settings(chalice_config(stage, function_name).environment_variables)


def _queue_spec(event: SQSEventConfig) -> QueueSpec:
    for spec in ALL_QUEUES:
        if event.queue in (spec.name, spec.logical):
            return spec
    raise ValueError(f"function {event.name} consumes queue {event.queue!r}, which no QueueSpec in "
                     f"chalicelib/queues.py defines")


def _function(stage: str, name: str, kind: str, logical_id: str, queue: QueueSpec | None = None) -> LambdaFunction:
    config = chalice_config(stage, name)
    return LambdaFunction(
        name=name, logical_id=logical_id, kind=kind,
        # Chalice leaves unset values as None and applies its defaults when it builds the function.
        memory_mb=config.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE,
        timeout_s=config.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT,
        reserved_concurrency=config.reserved_concurrency, architecture=config.lambda_architecture,
        log_retention_days=config.log_retention_in_days, queue=queue,
    )


CALLBACK_HANDLER = "callback_handler"
CALLBACK_HANDLER_LOGICAL_ID = "CallbackHandler"
# The functions `chalice package` makes of the WebSocket handlers (their names and logical ids are Chalice's).
WEBSOCKET_FUNCTIONS = {"$connect": ("websocket_connect", "WebsocketConnect"),
                       "$default": ("websocket_message", "WebsocketMessage"),
                       "$disconnect": ("websocket_disconnect", "WebsocketDisconnect")}


def functions(stage: str, app: Chalice | None = None) -> list[LambdaFunction]:
    """Every function of `stage`: the API function, the callback function, then Chalice's event handlers.

    The callback function is not Chalice's (one app, one API function): infra.edge defines it.
    """
    app = app or load_app()
    found = []
    if app.routes:
        found.append(_function(stage, API_HANDLER, "api", API_HANDLER_LOGICAL_ID))
    if any(path.startswith("/callbacks/") for path in app.routes):
        found.append(_function(stage, CALLBACK_HANDLER, "api", CALLBACK_HANDLER_LOGICAL_ID))
    for route in sorted(app.websocket_handlers):
        name, logical = WEBSOCKET_FUNCTIONS[route]
        found.append(_function(stage, name, "websocket", logical))
    for event in app.event_sources:
        if isinstance(event, SQSEventConfig):
            found.append(_function(stage, event.name, "sqs", to_cfn_resource_name(event.name), _queue_spec(event)))
        elif isinstance(event, ScheduledEventConfig):
            found.append(_function(stage, event.name, "schedule", to_cfn_resource_name(event.name)))
        else:
            raise ValueError(f"infra does not know how to deploy a {type(event).__name__} ({event.name})")
    return found


@dataclass(frozen=True)
class Route:
    """One API route method and who may call it (its operation's `access`, chalicelib.edge.registry)."""

    path: str
    method: str
    access: str = "read"

    @property
    def public(self) -> bool:
        """Callable without IAM: the platform callbacks (signed by the platform), the JWKS, the OpenAPI document."""
        return self.access == "public"

    @property
    def callback(self) -> bool:
        """A platform callback route (served by its own function, behind the WAF rate rule)."""
        return self.path.startswith("/callbacks/")


def routes(app: Chalice | None = None) -> list[Route]:
    """Every route and method of the app with its declared access; `/v1/` routes must not be public."""
    from chalicelib.edge.openapi import operations_of

    app = app or load_app()
    found = []
    for op in operations_of(app):
        if op.path.startswith("/v1/") and op.public:
            raise ValueError(f"{op.method} {op.path}: a /v1/ route must be IAM-authorized, not public")
        found.append(Route(op.path, op.method.lower(), op.access))
    return sorted(found, key=lambda r: (r.path, r.method))


def json_settings(fn: LambdaFunction) -> dict[str, Any]:
    """A function's settings as printed by `python -m infra.package functions`."""
    return {"name": fn.name, "kind": fn.kind, "memory_mb": fn.memory_mb, "timeout_s": fn.timeout_s,
            "reserved_concurrency": fn.reserved_concurrency, "architecture": fn.architecture,
            "log_retention_days": fn.log_retention_days, "queue": fn.queue.logical if fn.queue else None}
