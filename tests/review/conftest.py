"""Adversarial reproductions of the money path run on DynamoDB Local and moto (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _local_aws(aws_stack):
    return aws_stack
