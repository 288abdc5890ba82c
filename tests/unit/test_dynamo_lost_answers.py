"""A lost answer as botocore raises it (`ReadTimeoutError`, no response) inside a PynamoDB error: the error
translation must see a transport fault (retried, then `storage_unavailable`), never crash on the missing response."""

from __future__ import annotations

import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from chalicelib import dynamo
from chalicelib.errors import StorageUnavailable


def _read_timeout() -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url="https://dynamodb.test", error="read timed out")


@pytest.mark.parametrize("wrapper", [PutError, UpdateError, TransactWriteError])
def test_error_code__pynamodb_error_caused_by_read_timeout__no_code_and_transient(wrapper):
    # GIVEN a PynamoDB error whose cause is a read timeout (no response at all)
    exc = wrapper("write failed", cause=_read_timeout())
    # THEN it has no AWS code, and it is a transient fault
    assert dynamo.error_code(exc) is None
    assert dynamo.is_transient(exc) is True


def test_with_retries__write_times_out_every_time__storage_unavailable_after_every_attempt():
    runs = []

    def write() -> None:
        runs.append(1)
        raise PutError("put failed", cause=ConnectTimeoutError(endpoint_url="https://dynamodb.test"))

    # WHEN a write's answer never comes back
    with pytest.raises(StorageUnavailable) as raised:
        dynamo.with_retries(write, attempts=3, base_delay_s=0)
    # THEN it was retried up to the limit and surfaces as storage_unavailable, not a crash
    assert len(runs) == 3
    assert raised.value.code == "storage_unavailable"
