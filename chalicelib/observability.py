"""Structured logs and CloudWatch metrics, through AWS Lambda Powertools.

Powertools writes one JSON object per log line (with the Lambda request id when there is one) and
emits metrics in CloudWatch Embedded Metric Format on stdout, so a metric costs no API call and an
alarm can match either. Both objects are plain in-process writers: safe to build at import.
"""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger, Metrics

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
