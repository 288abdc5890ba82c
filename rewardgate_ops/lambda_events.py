"""Play AWS Lambda's part for SQS and schedule event sources, against real (moto) queues.

`deliver_batch` does what Lambda's SQS event source mapping does once: receive up to a batch of
messages, hand them to the handler as a real SQS event (each record with its own messageId), delete
the records the handler did not report in `batchItemFailures`, and leave the failed ones to come back
after the visibility timeout (or move to the DLQ after maxReceiveCount, which moto enforces). A raised
exception fails the whole batch, as in Lambda. The local stack's event-source loop and the tests both
use it, so both exercise the same delivery semantics.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.observability import logger

Handler = Callable[[dict[str, Any], Any], Any]


class LocalLambdaContext:
    """The subset of the Lambda context object rewardgate's handlers use."""

    def __init__(self, function_name: str, timeout_s: float, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before this invocation's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_record(message: dict[str, Any], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """One record of a Lambda SQS event, built from a ReceiveMessage message."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "local"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A Lambda SQS event from records."""
    return {"Records": list(records)}


def scheduled_event(rule_name: str) -> dict[str, Any]:
    """A Lambda EventBridge scheduled event, as `@app.schedule` handlers receive it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule_name}"],
        "detail": {},
    }


def failed_ids(result: Any, all_ids: list[str]) -> set[str]:
    """Which records a handler's return value reports as failed (Lambda's ReportBatchItemFailures).

    A malformed answer, or a failure entry with an empty or unknown id, fails the whole batch, as
    Lambda does.
    """
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(all_ids)
    failures = result.get("batchItemFailures") or []
    ids = {entry.get("itemIdentifier") for entry in failures if isinstance(entry, dict)}
    if any(not i or i not in all_ids for i in ids):
        return set(all_ids)
    return ids  # type: ignore[return-value]


@dataclass
class Delivery:
    """What one batch delivery did."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_ids: set[str] = field(default_factory=set)


def receive(sqs: Any, queue_url: str, max_messages: int, wait_s: float = 0) -> list[dict[str, Any]]:
    """Receive up to `max_messages` (SQS hands out at most 10 per call), waiting up to `wait_s` for the first."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while len(messages) < max_messages:
        remaining_wait = max(0.0, deadline - time.monotonic())
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - len(messages)),
            # SQS waits whole seconds: round up, so a fraction of a second left is one long poll rather
            # than a burst of zero-wait receives.
            WaitTimeSeconds=min(20, math.ceil(remaining_wait)) if not messages else 0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            if messages or time.monotonic() >= deadline:
                break
            continue
        messages.extend(got)
    return messages


def deliver_batch(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    handler: Handler,
    batch_size: int,
    *,
    wait_s: float = 0,
    timeout_s: float = 60,
    function_name: str = "worker",
    failure_visibility_s: int | None = None,
) -> Delivery:
    """Receive one batch and run it through `handler` with Lambda's partial-failure semantics.

    `failure_visibility_s` makes failed records visible again after that many seconds instead of the
    queue's visibility timeout (tests use 0 to redeliver at once).
    """
    messages = receive(sqs, queue_url, batch_size, wait_s)
    if not messages:
        return Delivery()
    records = [sqs_record(m, queue_arn) for m in messages]
    ids = [r["messageId"] for r in records]
    context = LocalLambdaContext(function_name, timeout_s)
    try:
        failed = failed_ids(handler(sqs_event(records), context), ids)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        # Lambda treats an exception or a crash of the function alike: the whole batch fails and comes
        # back after the visibility timeout. (Crash points raise a BaseException on purpose.)
        logger.exception("handler failed; the whole batch fails", extra={"function": function_name})
        failed = set(ids)
    done = [m for m in messages if m["MessageId"] not in failed]
    for start in range(0, len(done), 10):
        chunk = done[start:start + 10]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
    if failure_visibility_s is not None:
        for message in messages:
            if message["MessageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=failure_visibility_s,
                )
    return Delivery(received=len(messages), succeeded=len(done), failed=len(failed), failed_ids=failed)


# --- API Gateway WebSocket events ----------------------------------------------------------------------

WS_API_ID = "localws0001"


def websocket_event(route: str, connection_id: str, *, stage: str = "local", domain: str = "127.0.0.1",
                    body: str | None = None, query: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None, connected_at_ms: int | None = None,
                    close_code: int = 1000, close_reason: str = "") -> dict[str, Any]:
    """An API Gateway WebSocket Lambda proxy event for `$connect`, `$default` or `$disconnect`.

    The fields and their shapes are API Gateway's (a `$connect` carries headers and the query string, a
    message its body, a disconnect its close code); Chalice's `WebsocketEvent` reads `requestContext`.
    """
    now = int(time.time() * 1000)
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    context: dict[str, Any] = {
        "routeKey": route, "eventType": kind, "extendedRequestId": uuid.uuid4().hex[:16] + "=",
        "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"), "messageDirection": "IN",
        "stage": stage, "connectedAt": connected_at_ms or now, "requestTimeEpoch": now,
        "identity": {"sourceIp": "127.0.0.1", "userAgent": (headers or {}).get("User-Agent", "")},
        "requestId": uuid.uuid4().hex[:16] + "=", "domainName": domain, "connectionId": connection_id,
        "apiId": WS_API_ID,
    }
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
    if kind == "MESSAGE":
        context["messageId"] = uuid.uuid4().hex[:16] + "="
        event["body"] = body
    else:
        event["headers"] = dict(headers or {})
        event["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()}
    if kind == "CONNECT" and query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    if kind == "DISCONNECT":
        context["disconnectStatusCode"] = close_code
        context["disconnectReason"] = close_reason
    return event
