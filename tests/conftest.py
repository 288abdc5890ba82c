"""Test-suite wiring: the environment, and a real DynamoDB Local + moto server for the session.

Unit tests (tests/unit) use none of this. Functional and integration tests request `aws_stack`
(their folders' conftest makes it automatic): one DynamoDB Local (in memory) and one moto server on
free ports, with every table and queue created from the deploy template's definitions. Tests isolate
themselves by using fresh ids (`uid()`), not by recreating tables.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import hypothesis_profiles

ROOT = Path(__file__).resolve().parent.parent

# Before anything from chalicelib is imported: table names and the region are read at import time.
os.environ.update(
    {
        "RG_STAGE": "local",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "RG_CONFIG_CACHE_S": "0",
        # DynamoDB Local and moto on a shared, busy machine answer in seconds where AWS answers in milliseconds:
        # the suite's calls wait longer than the deployed 5 s (tests of the deployed values build their own).
        "RG_AWS_READ_TIMEOUT_S": "30",
        "RG_LOG_LEVEL": "WARNING",
        # An hour pass reads every bucket of the hour: 4 instead of the local default 16 make each pass 4x
        # shorter. The bucket count is a parameter of every read and write; tests/integration/
        # test_reconcile_catchup.py runs a pass at the deployed 256 (.chalice/config.json, stage prod).
        "RG_HOUR_BUCKETS": "4",
        "POWERTOOLS_METRICS_NAMESPACE": "rewardgate",
    }
)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)

# Hypothesis profiles (dev, ci, thorough), loaded before any test module applies its decorators.
HYPOTHESIS_PROFILE = hypothesis_profiles.register()

# Fixtures shared by the functional and integration suites (client, tp_app, queue).
pytest_plugins = ["tests.shared_fixtures"]


def uid(prefix: str = "t") -> str:
    """A fresh identifier that is valid everywhere rewardgate takes an id."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@dataclass
class AwsStack:
    """The running local services and the queues created on them."""

    dynamodb_endpoint: str
    moto_endpoint: str
    queue_urls: dict[str, str]


@pytest.fixture(scope="session")
def aws_stack(tmp_path_factory: pytest.TempPathFactory) -> AwsStack:
    import boto3

    from chalicelib import process_state
    from infra.provision import provision_queues, provision_tables
    from rewardgate_ops import services

    logs = tmp_path_factory.mktemp("services")
    ddb = services.start_dynamodb_local(services.free_port(), log_path=logs / "dynamodb.log")
    moto = services.start_moto_server(services.free_port(), log_path=logs / "moto.log")
    os.environ.update(services.endpoint_environment(ddb.endpoint, moto.endpoint))
    process_state.reset()
    try:
        provision_tables(boto3.client("dynamodb"), "local")
        urls = provision_queues(boto3.client("sqs"), "local")
        yield AwsStack(ddb.endpoint, moto.endpoint, urls)
    finally:
        process_state.reset()
        moto.stop()
        ddb.stop()
