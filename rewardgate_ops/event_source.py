"""The local event-source loop: Lambda's SQS event source mapping for each `@app.on_sqs_message`.

One thread per `SQSEventConfig` long-polls its queue and hands each batch to the Chalice handler
through `lambda_events.deliver_batch`, which gives the real SQS event shape (a distinct messageId per
record), deletes what succeeded, and leaves what the handler reported in `batchItemFailures` (or the
whole batch, if it raised) for the queue's visibility timeout; moto moves a message to the DLQ after
the queue's maxReceiveCount. Batch size and batching window are the decorator's.

Nothing a handler or the queue does stops a worker: errors are logged and the loop goes on, with a
back-off when SQS itself is unreachable.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rewardgate_ops.errors import OpsError
from rewardgate_ops.lambda_events import Delivery, deliver_batch

log = logging.getLogger("rewardgate_ops.local")

Handler = Callable[[dict[str, Any], Any], Any]

DEFAULT_TIMEOUT_S = 60
# Short long-polls: a worker notices Ctrl-C within this time, and an idle queue costs one request
# per poll (free on moto).
POLL_WAIT_S = 2


class HandlerNotFound(OpsError, LookupError):
    """A `handler_string` that names no callable."""


def resolve_handler(handler_string: str) -> Handler:
    """The callable a Chalice `handler_string` (`module.attribute`, e.g. `app.worker`) names.

    For `@app.on_sqs_message` / `@app.schedule` (on the app or a blueprint) the attribute is Chalice's
    event-source wrapper, which takes the raw Lambda event and context, as in AWS.
    """
    module_name, _, attribute = handler_string.rpartition(".")
    if not module_name or not attribute:
        raise HandlerNotFound(f"handler string {handler_string!r} is not 'module.attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFound(f"cannot import module {module_name!r} for handler {handler_string!r}: {exc}") from exc
    handler = getattr(module, attribute, None)
    if handler is None:
        raise HandlerNotFound(f"module {module_name!r} has no attribute {attribute!r} (handler {handler_string!r})")
    if not callable(handler):
        raise HandlerNotFound(f"{handler_string!r} is not callable")
    return handler


def queue_name_of(queue: str | None, queue_arn: str | None) -> str:
    """The queue's name from an `SQSEventConfig` (it carries a name or an ARN)."""
    if queue:
        return queue
    if queue_arn:
        return queue_arn.rsplit(":", 1)[-1]
    raise ValueError("the SQS event source names neither a queue nor a queue ARN")


class BatchingWindowClient:
    """An SQS client whose receives hold a batch open for Lambda's batching window.

    Lambda invokes when the batch is full or when the window (counted from the first message)
    closes. `deliver_batch` receives until a receive comes back empty; this client turns each
    follow-up receive into a long poll for what is left of the window, and answers empty once the
    window has closed. Use one instance per batch. Every other call passes through.
    """

    def __init__(self, sqs: Any, window_s: float) -> None:
        self._sqs = sqs
        self._window_s = window_s
        self._opened_at: float | None = None

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        """ReceiveMessage, stretched over the batching window once a batch has begun."""
        if self._opened_at is not None and self._window_s > 0:
            remaining = self._opened_at + self._window_s - time.monotonic()
            if remaining <= 0:
                return {}
            # SQS takes whole seconds; rounding up overshoots the window by under a second.
            kwargs["WaitTimeSeconds"] = min(20, math.ceil(remaining))
        answer = self._sqs.receive_message(**kwargs)
        if answer.get("Messages") and self._opened_at is None:
            self._opened_at = time.monotonic()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


@dataclass
class SqsWorker:
    """One SQS event source: a queue, the handler it feeds, and the mapping's settings."""

    name: str
    handler: Handler
    queue_name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_s: float = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    handler_string: str = ""
    poll_wait_s: float = POLL_WAIT_S

    def poll_once(self, sqs: Any) -> Delivery:
        """Receive one batch (waiting up to `poll_wait_s` for it) and deliver it."""
        delivery = deliver_batch(
            BatchingWindowClient(sqs, self.batching_window_s),
            self.queue_url,
            self.queue_arn,
            self.handler,
            self.batch_size,
            wait_s=self.poll_wait_s,
            timeout_s=self.timeout_s,
            function_name=self.name,
        )
        if delivery.failed:
            log.warning(
                "worker %s: %d received, %d succeeded, %d failed %s; they come back after %s's visibility "
                "timeout and go to its DLQ after maxReceiveCount",
                self.name, delivery.received, delivery.succeeded, delivery.failed,
                sorted(delivery.failed_ids), self.queue_name,
            )
        elif delivery.received:
            log.info("worker %s: %d received, all succeeded", self.name, delivery.received)
        return delivery

    def run(self, sqs: Any, stop: threading.Event) -> None:
        """Poll until `stop` is set. Never raises: SQS errors are logged and retried with back-off."""
        backoff_s = 1.0
        while not stop.is_set():
            try:
                self.poll_once(sqs)
                backoff_s = 1.0
            except Exception:
                if stop.is_set():
                    return
                log.exception("worker %s: polling %s failed; retrying in %.0fs", self.name, self.queue_name, backoff_s)
                stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)


def worker_for(config: Any, sqs: Any, timeouts: dict[str, int] | None = None) -> SqsWorker:
    """An `SqsWorker` for a Chalice `SQSEventConfig`, its queue looked up on `sqs`.

    `timeouts` maps queue names to the worker's Lambda timeout (from `chalicelib.queues`).
    """
    name = queue_name_of(config.queue, getattr(config, "queue_arn", None))
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return SqsWorker(
        name=config.name,
        handler=resolve_handler(config.handler_string),
        queue_name=name,
        queue_url=url,
        queue_arn=arn,
        batch_size=config.batch_size,
        batching_window_s=config.maximum_batching_window_in_seconds or 0,
        timeout_s=(timeouts or {}).get(name, DEFAULT_TIMEOUT_S),
        handler_string=config.handler_string,
    )


def start_worker_thread(worker: SqsWorker, sqs: Any, stop: threading.Event) -> threading.Thread:
    """Run `worker` in a daemon thread (a hung handler must not keep the process alive at exit)."""
    thread = threading.Thread(target=worker.run, args=(sqs, stop), name=f"worker-{worker.name}", daemon=True)
    thread.start()
    return thread
