"""boto3 clients, built lazily on first use and shared by all threads.

Never at import time: tests and the local stack point clients at DynamoDB Local and moto through the
standard `AWS_ENDPOINT_URL_<SERVICE>` environment variables, which must be set before the first call.
boto3 clients are thread-safe once built, but building one from the default session is not, hence
the lock.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.settings import Settings, settings

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_queue_urls: dict[str, str] = {}


def config(s: Settings | None = None) -> Config:
    """Bounded calls: short connect/read timeouts and few standard-mode attempts (docs/explanation/timeouts.md),
    so one call fits inside the caller's deadline. A pool sized for the worker threads a benchmark or an
    integration test runs avoids "connection pool is full" stalls."""
    s = s or settings()
    return Config(retries={"mode": "standard", "total_max_attempts": s.aws_max_attempts},
                  connect_timeout=s.aws_connect_timeout_s, read_timeout=s.aws_read_timeout_s,
                  max_pool_connections=64)


def client(service: str) -> Any:
    """The shared boto3 client for `service` (e.g. "sqs", "secretsmanager")."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(service)
        if found is None:
            found = boto3.session.Session().client(service, region_name=settings().region, config=config())
            _clients[service] = found
    return found


def sqs() -> Any:
    """The shared SQS client."""
    return client("sqs")


def secretsmanager() -> Any:
    """The shared Secrets Manager client."""
    return client("secretsmanager")


def queue_url(queue_name: str) -> str:
    """URL of a queue by physical name, looked up once per process."""
    url = _queue_urls.get(queue_name)
    if url is None:
        url = sqs().get_queue_url(QueueName=queue_name)["QueueUrl"]
        _queue_urls[queue_name] = url
    return url


def reset_clients() -> None:
    """Drop every cached client and queue URL (tests that move endpoints call this)."""
    with _lock:
        _clients.clear()
        _queue_urls.clear()
