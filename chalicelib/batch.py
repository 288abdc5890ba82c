"""Per-record processing of SQS batches, through Powertools' batch utility.

Lambda deletes a whole batch when the function returns normally, unless the answer lists the failed
records in `batchItemFailures` (and the event source mapping has ReportBatchItemFailures on). The
Powertools `BatchProcessor` runs a handler per record, collects the failures and builds that answer,
also when every record failed (SQS redelivers them all, as it would after a failed invocation).

A record is not started once the invocation's deadline (`chalicelib.deadline`, set by the worker's entry
point from the Lambda's remaining time) is near: it is reported failed, and SQS redelivers it. So a
slow batch ends with an answer before the function's timeout instead of being killed with all its
records; handlers are idempotent, so a record that comes back twice has one effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib import deadline


def process_sqs_batch(event: Any, record_handler: Callable[[SQSRecord], Any], context: Any = None,
                      reserve_s: float = 0.0) -> dict:
    """Run `record_handler(record=...)` on every record of a Chalice `SQSEvent`; return the partial-failure answer.

    Records not started while at most `reserve_s` remain before the deadline (time the caller keeps for
    its own work after the batch) are reported failed without running.
    """
    raw = event.to_dict() if hasattr(event, "to_dict") else event

    def within_deadline(record: SQSRecord) -> Any:
        if deadline.remaining_s() <= reserve_s:
            raise deadline.DeadlineExceeded("record not started: the invocation's deadline is near",
                                            message_id=record.message_id)
        return record_handler(record=record)  # type: ignore[call-arg]

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=raw, record_handler=within_deadline, processor=processor, context=context)
