"""Per-record processing of SQS batches, through Powertools' batch utility.

Lambda deletes a whole batch when the function returns normally, unless the answer lists the failed
records in `batchItemFailures` (and the event source mapping has ReportBatchItemFailures on). The
Powertools `BatchProcessor` runs a handler per record, collects the failures and builds that answer;
when every record fails it raises, which fails the invocation as a whole (same effect, one retry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def process_sqs_batch(event: Any, record_handler: Callable[[SQSRecord], Any], context: Any = None) -> dict:
    """Run `record_handler(record=...)` on every record of a Chalice `SQSEvent`; return the partial-failure answer."""
    raw = event.to_dict() if hasattr(event, "to_dict") else event
    processor = BatchProcessor(event_type=EventType.SQS)
    return process_partial_response(event=raw, record_handler=record_handler, processor=processor, context=context)
