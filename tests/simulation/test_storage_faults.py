"""The simulation's indeterminate writes, checked against DynamoDB Local: what lands, and what the code's own
storage edge (`chalicelib.dynamo.with_retries`) makes of each error, as production would see it."""

from __future__ import annotations

import uuid

import pytest

from tests.simulation.storage_faults import StorageFaults


@pytest.fixture()
def injector(aws_stack):
    faults = StorageFaults()
    faults.install()
    yield faults
    faults.uninstall()


def _item(pk: str):
    from chalicelib.rewards.tables import ConfigItem

    return ConfigItem(pk, "sim-fault", body="{}", updated_at_ms=1)


def _exists(pk: str) -> bool:
    from chalicelib.rewards.tables import ConfigItem

    return ConfigItem.count(pk, consistent_read=True) == 1


def _save(pk: str) -> None:
    from chalicelib.dynamo import with_retries
    from chalicelib.rewards.tables import ConfigItem

    with_retries(lambda: _item(pk).save(condition=ConfigItem.sk.does_not_exist()), base_delay_s=0.001)


@pytest.mark.parametrize(("mode", "lands"), [("timeout_landed_sticky", True), ("throttled_sticky", False)])
def test_storage_faults__answer_lost_on_every_retry__storage_unavailable_and_the_write_as_the_mode_says(
        injector, mode, lands):
    from chalicelib.errors import StorageUnavailable

    # GIVEN the first write of the action made indeterminate, and every retry of it throttled
    pk = f"sim-fault#{uuid.uuid4().hex}"
    with injector.armed(1, mode):
        # WHEN the code's retrying edge saves an item
        with pytest.raises(StorageUnavailable) as raised:
            _save(pk)
    # THEN the caller is told "unavailable, retry" (never a success, never another error) and the item is
    # stored exactly when the mode says the write landed
    assert raised.value.code == "storage_unavailable"
    assert _exists(pk) is lands
    assert sum(injector.fired.values()) == 1


def test_storage_faults__landed_answer_lost_once__the_retry_meets_its_own_write(injector):
    from pynamodb.exceptions import PutError

    from chalicelib.dynamo import error_code

    # GIVEN the write lands and its answer is lost once (InternalServerError); retries reach storage
    pk = f"sim-fault#{uuid.uuid4().hex}"
    with injector.armed(1, "timeout_landed"):
        # WHEN the code's retrying edge saves a put-if-absent item
        with pytest.raises(PutError) as raised:
            _save(pk)
    # THEN the retry finds the item its own first attempt wrote: the caller must treat that as "maybe mine"
    assert error_code(raised.value) == "ConditionalCheckFailedException"
    assert _exists(pk)


def test_storage_faults__landed_past_the_deadline__deadline_exceeded_and_the_write_landed(injector):
    from chalicelib import deadline

    # GIVEN a unit of work with a deadline, whose write lands as the deadline passes
    pk = f"sim-fault#{uuid.uuid4().hex}"
    with deadline.bounded(None, limit_s=600), injector.armed(1, "deadline_landed"):
        # WHEN the code's retrying edge saves an item
        with pytest.raises(deadline.DeadlineExceeded):
            _save(pk)
    # THEN the caller gives up at its deadline, and the write is there
    assert _exists(pk)


def test_storage_faults__other_threads_and_reads__untouched(injector):
    from chalicelib.rewards.tables import ConfigItem

    # GIVEN an armed fault and a stored item
    pk = f"sim-fault#{uuid.uuid4().hex}"
    _save(pk)
    with injector.armed(1, "throttled_sticky"):
        # WHEN only reads run
        items = list(ConfigItem.query(pk, consistent_read=True))
    # THEN they pass, and the fault never fired
    assert len(items) == 1 and sum(injector.fired.values()) == 0
