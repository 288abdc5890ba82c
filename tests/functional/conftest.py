"""Functional tests run the real handlers on DynamoDB Local and moto (see tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _local_aws(request):
    # A test marked `own_stack` needs no service of the session (the deploy template tests read files, or run
    # moto in-process): the session's DynamoDB Local and moto are not started for it.
    if request.node.get_closest_marker("own_stack"):
        return None
    return request.getfixturevalue("aws_stack")
