"""Structured logs, CloudWatch metrics and X-Ray traces, through AWS Lambda Powertools.

Powertools writes one JSON object per log line (with the Lambda request id when there is one) and
emits metrics in CloudWatch Embedded Metric Format on stdout, so a metric costs no API call and an
alarm can match either. Both objects are plain in-process writers: safe to build at import.

`tracer` patches botocore in Lambda (`Tracing: Active`), so every DynamoDB, SQS and Secrets Manager
call is a subsegment of the request's trace; X-Ray samples 1 % (infra/edge.py). Outside Lambda (tests,
the local stack, the CLI) Powertools disables it by itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "rewardgate"
NAMESPACE = "rewardgate"


class _CurrentStdout(logging.StreamHandler):
    """A handler writing to whatever `sys.stdout` is at the time of each record.

    Lambda reads stdout; the operator CLI redirects stdout to stderr around domain calls so its own
    output stays clean JSON or tables. A handler bound to the stdout of import time could not follow.
    """

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN202 - logging's own attribute
        return sys.stdout

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


logger = Logger(service=SERVICE, level=os.environ.get("RG_LOG_LEVEL", "INFO"), logger_handler=_CurrentStdout())
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


# --- business metrics ------------------------------------------------------------------------------
#
# `count("GrantsCreated")` adds to the current scope's tally; a scope (one HTTP request, one worker
# batch) emits all its counts as ONE EMF document when it ends, with the `stage` and `service`
# dimensions the alarms match. Outside a scope a count is emitted at once. Metrics that need their own
# dimension (a callback rejection's reason) use `count_by`, emitted at once. Metric names and what
# they count are listed in docs/operations/index.md; alarms on them are in infra/alarms.py.

_scope: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar("rg_metric_scope", default=None)


def _stage() -> str:
    from chalicelib.settings import settings

    return settings().stage


def emit_now(name: str, value: int, **dimensions: str) -> None:
    """One metric as its own EMF document now, with `stage` (and `dimensions`); nothing when disabled."""
    if is_metrics_disabled():  # the operator CLI: EMF means something only in Lambda's log stream
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="stage", value=_stage())
        for key, label in dimensions.items():
            metric.add_dimension(name=key, value=label)


def count(name: str, value: int = 1) -> None:
    """Count a business event (GrantsCreated, SoldOut, ...) in the current scope (or emit it now)."""
    tally = _scope.get()
    if tally is not None:
        tally[name] += value
        return
    emit_now(name, value)


def count_by(name: str, dimension: str, label: str, value: int = 1) -> None:
    """Emit a count with one extra dimension now (e.g. CallbackRejected by `reason`)."""
    emit_now(name, value, **{dimension: label})


def emit_counts(counts: Counter[str]) -> None:
    """Emit `counts` as one EMF document (nothing when empty)."""
    positive = {name: value for name, value in counts.items() if value}
    if not positive:
        return
    emf = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    emf.add_dimension(name="stage", value=_stage())
    for name, value in sorted(positive.items()):
        emf.add_metric(name=name, unit=MetricUnit.Count, value=value)
    emf.flush_metrics()


@contextlib.contextmanager
def metric_scope() -> Iterator[Counter[str]]:
    """Collect `count()` calls made inside, and emit them once on exit (even when the body raises)."""
    tally: Counter[str] = Counter()
    token = _scope.set(tally)
    try:
        yield tally
    finally:
        _scope.reset(token)
        try:
            emit_counts(tally)
        except Exception:  # a metric must never turn an answered request into a failure
            logger.exception("could not emit metrics")
