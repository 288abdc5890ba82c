"""Functional tests run the real handlers on DynamoDB Local and moto (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _local_aws(aws_stack):
    return aws_stack
