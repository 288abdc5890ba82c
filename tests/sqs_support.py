"""The one SQS drain helper of the tests: receive and delete what a queue holds, without PurgeQueue.

PurgeQueue is not used: SQS (and moto) allow one purge per queue per 60 seconds, which tests would hit.
"""

from __future__ import annotations

from typing import Any


def take_messages(url: str, sqs: Any = None, expected: int | None = None, max_polls: int = 200) -> list[dict]:
    """Receive and delete the messages visible on queue `url`; stop when the queue reads empty (or, with `expected`,
    once that many arrived: an empty read before then polls again, `max_polls` times at most)."""
    if sqs is None:
        from chalicelib.clients import sqs as client

        sqs = client()
    taken: list[dict] = []
    for _ in range(max_polls):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            if expected is None or len(taken) >= expected:
                break
            continue
        taken.extend(got)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        if expected is not None and len(taken) >= expected:
            break
    return taken
