"""The SQS queues and their dead-letter queues, with the timings that must agree with the workers.

One definition serves the Chalice decorators in `app.py`, the CloudFormation in `infra/`, and the
local stack. A queue's visibility timeout is at least six times its worker's Lambda timeout (AWS's
guidance for SQS event sources), so a message is not redelivered while a slow invocation still holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.settings import resource_name, settings


@dataclass(frozen=True)
class QueueSpec:
    """One work queue, its DLQ, and the Lambda event source that drains it."""

    logical: str
    worker_timeout_s: int
    batch_size: int
    batching_window_s: int
    max_receive_count: int
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600

    @property
    def visibility_timeout_s(self) -> int:
        """Six times the worker's timeout."""
        return 6 * self.worker_timeout_s

    @property
    def name(self) -> str:
        """Physical queue name for the current stage (from cached settings, never a per-call env read)."""
        return resource_name(self.logical, settings().stage)

    @property
    def dlq_name(self) -> str:
        """Physical dead-letter queue name for the current stage."""
        return resource_name(f"{self.logical}-dlq", settings().stage)


EVENTS = QueueSpec("events", worker_timeout_s=30, batch_size=10, batching_window_s=0, max_receive_count=5)
# Lambda lets SQS batches exceed 10 only with a batching window of at least 1 s.
CREDITS = QueueSpec("credits", worker_timeout_s=60, batch_size=100, batching_window_s=1, max_receive_count=5)

# Live push (chalicelib/live): "push these connections of this game" messages, one game's fan-out or a chunk of
# it. Standard, not FIFO: order comes from each connection's cursor, not from the queue (chalicelib/live/push.py).
LIVE = QueueSpec("live", worker_timeout_s=30, batch_size=10, batching_window_s=0, max_receive_count=5,
                 retention_s=24 * 3600)

ALL_QUEUES = (EVENTS, CREDITS, LIVE)
