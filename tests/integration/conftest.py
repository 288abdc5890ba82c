"""Integration tests run many threads on DynamoDB Local and moto (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _local_aws(request):
    # A test marked `own_stack` starts every service it uses itself (`rewardgate local up`, its own DynamoDB
    # Local): the session's stack is not started for it.
    if request.node.get_closest_marker("own_stack"):
        return None
    return request.getfixturevalue("aws_stack")
