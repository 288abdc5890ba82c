"""Structured logs and CloudWatch metrics, through AWS Lambda Powertools.

Powertools writes one JSON object per log line (with the Lambda request id when there is one) and
emits metrics in CloudWatch Embedded Metric Format on stdout, so a metric costs no API call and an
alarm can match either. Both objects are plain in-process writers: safe to build at import.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = "rewardgate"
NAMESPACE = "rewardgate"

logger = Logger(service=SERVICE, level=os.environ.get("RG_LOG_LEVEL", "INFO"))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
