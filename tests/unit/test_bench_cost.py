"""The benchmark meter's arithmetic: item sizes, AWS's capacity rules, SQS chunks and list prices.

The rain benchmark's figures are only as good as these rules, so each is pinned here with the examples
AWS's documentation gives (or small ones computed by hand from the documented formula).
"""

from __future__ import annotations

import pytest

from bench.capacity_rules import (
    EVENTUAL,
    STRONG,
    TRANSACTIONAL,
    IndexSchema,
    TableSchema,
    apply_update,
    item_size,
    number_size,
    read_units,
    sqs_requests,
    write_units,
)
from bench.meter import Meter, Prices, Usage, cost

PLAIN = TableSchema("plain", ("pk",))
ORDERS = TableSchema("orders", ("pk",), (
    IndexSchema("by_hour", ("hour", "pk"), "ALL"),
    IndexSchema("pending", ("pending", "created"), "KEYS_ONLY"),
))


def s(text: str) -> dict:
    return {"S": text}


def n(value: int) -> dict:
    return {"N": str(value)}


def sized_item(pk: str, size: int, **extra: dict) -> dict:
    """An item of exactly `size` bytes (attribute `pk` plus a padding string `p`)."""
    item = {"pk": s(pk), **extra}
    padding = size - item_size(item) - len("p")
    assert padding >= 0
    return {**item, "p": s("x" * padding)}


def new_meter() -> Meter:
    return Meter({t.name: t for t in (PLAIN, ORDERS)})


def put(meter: Meter, table: str, item: dict, *, error: str | None = None):
    parsed = {"Error": {"Code": error}} if error else {}
    return meter.record_call("dynamodb", "PutItem", {"TableName": table, "Item": item}, parsed, 400 if error else 200)


def units(charges) -> float:
    return sum(c.units for c in charges)


# --- item sizes ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("0", 2), ("7", 2), ("12", 2), ("123", 3), ("100", 2), ("0.001", 2), ("123456789", 6), ("-12", 3),
])
def test_number_size__significant_digits__one_byte_per_two_plus_one(text, expected):
    # GIVEN a number as DynamoDB receives it WHEN sized THEN leading/trailing zeros do not count
    assert number_size(text) == expected


def test_item_size__strings_and_numbers__names_plus_utf8_bytes_plus_number_bytes():
    # GIVEN an item with an ASCII string, a multi-byte string and a number
    item = {"id": s("abc"), "名": s("红包"), "amount": n(888)}
    # WHEN sized THEN names and values count in UTF-8 bytes, the number as (3 digits -> 2 bytes) + 1
    assert item_size(item) == (2 + 3) + (3 + 6) + (6 + 3)


def test_item_size__list_and_map__three_bytes_overhead_plus_one_per_element():
    # GIVEN a list of two strings and a map with one number
    item = {"l": {"L": [s("ab"), s("c")]}, "m": {"M": {"k": n(5)}}, "b": {"BOOL": True}, "z": {"NULL": True}}
    # THEN each document costs 3 bytes plus 1 per element (plus map keys), bool/null 1 byte each
    assert item_size(item) == (1 + 3 + (1 + 2) + (1 + 1)) + (1 + 3 + (1 + 1 + 2)) + 2 + 2


# --- units ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "expected"), [(0, 1), (1, 1), (1024, 1), (1025, 2), (3500, 4)])
def test_write_units__per_started_kilobyte__at_least_one(size, expected):
    # GIVEN an item of `size` bytes WHEN written THEN one unit per started KB, never zero
    assert write_units(size) == expected


@pytest.mark.parametrize(("size", "consistency", "expected"), [
    (3500, STRONG, 1), (3500, EVENTUAL, 0.5), (3500, TRANSACTIONAL, 2), (8192, STRONG, 2), (8193, EVENTUAL, 1.5),
    (0, STRONG, 1), (0, EVENTUAL, 0.5),
])
def test_read_units__per_started_4kb__by_consistency(size, consistency, expected):
    # GIVEN bytes read at once (0 = a missing item) WHEN read THEN per started 4 KB, x0.5 / x1 / x2
    assert read_units(size, consistency) == expected


# --- writes --------------------------------------------------------------------------------------

def test_transaction__three_500_byte_puts__six_write_units():
    # GIVEN AWS's own example: one transaction writing three 500-byte items
    meter = new_meter()
    items = [{"Put": {"TableName": "plain", "Item": sized_item(f"k{i}", 500)}} for i in range(3)]
    # WHEN it commits
    charges = meter.record_call("dynamodb", "TransactWriteItems", {"TransactItems": items}, {})
    # THEN it costs 2 write units per item: 6 (DynamoDB Local reports 2.0 for it)
    assert units(charges) == 6
    assert meter.usage().wru == 6


def test_put__replacing_a_larger_item__charged_on_the_larger():
    # GIVEN a 2.5 KB item
    meter = new_meter()
    put(meter, "plain", sized_item("k", 2500))
    # WHEN it is replaced by a 100-byte item THEN the write is charged on the old size: 3 units
    assert units(put(meter, "plain", sized_item("k", 100))) == 3


def test_update__item_grows_past_1kb__charged_on_size_after():
    # GIVEN a 900-byte item
    meter = new_meter()
    put(meter, "plain", sized_item("k", 900))
    # WHEN an update adds a 300-byte attribute
    params = {"TableName": "plain", "Key": {"pk": s("k")}, "UpdateExpression": "SET #a = :v",
              "ExpressionAttributeNames": {"#a": "note"}, "ExpressionAttributeValues": {":v": s("y" * 296)}}
    charges = meter.record_call("dynamodb", "UpdateItem", params, {})
    # THEN it is charged on the larger (after) size, 1 200 bytes: 2 units, and the shadow grew
    assert units(charges) == 2
    assert item_size(meter.item("plain", {"pk": s("k")})) == 1200


def test_conditional_put__condition_fails__still_consumes_and_writes_nothing():
    # GIVEN a 1.5 KB item
    meter = new_meter()
    put(meter, "plain", sized_item("k", 1500))
    # WHEN a put-if-absent of a 100-byte item with the same key fails
    failed = put(meter, "plain", sized_item("k", 100), error="ConditionalCheckFailedException")
    # THEN it consumed the larger (existing) item's units and the stored item is unchanged
    assert units(failed) == 2
    assert item_size(meter.item("plain", {"pk": s("k")})) == 1500
    # AND a failed conditional write on an absent item consumes one unit
    update = {"TableName": "plain", "Key": {"pk": s("none")}, "UpdateExpression": "SET #a = :v",
              "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": s("x" * 3000)},
              "ConditionExpression": "attribute_exists(pk)"}
    charges = meter.record_call("dynamodb", "UpdateItem", update,
                                {"Error": {"Code": "ConditionalCheckFailedException"}}, 400)
    assert units(charges) == 1
    assert meter.usage().failed_conditions == 2


def test_cancelled_transaction__two_units_per_item_no_index_writes__nothing_stored():
    # GIVEN an existing order, and a transaction putting it again plus a new indexed order
    meter = new_meter()
    put(meter, "orders", {"pk": s("o1"), "hour": s("h#1")})
    items = [{"Put": {"TableName": "orders", "Item": {"pk": s("o1"), "hour": s("h#1")}}},
             {"Put": {"TableName": "orders", "Item": {"pk": s("o2"), "hour": s("h#1")}}}]
    # WHEN DynamoDB cancels it (the first condition failed)
    parsed = {"Error": {"Code": "TransactionCanceledException"},
              "CancellationReasons": [{"Code": "ConditionalCheckFailed"}, {"Code": "None"}]}
    charges = meter.record_call("dynamodb", "TransactWriteItems", {"TransactItems": items}, parsed, 400)
    # THEN each item is charged 2 units (the meter's stated upper bound), no index, and o2 does not exist
    assert [(c.target, c.units) for c in charges] == [("orders", 2.0), ("orders", 2.0)]
    assert meter.item("orders", {"pk": s("o2")}) is None
    assert meter.usage().cancelled_transactions == 1


# --- secondary indexes ---------------------------------------------------------------------------

def test_index__new_item_with_index_keys__one_write_per_index_it_enters():
    # GIVEN a table with an ALL index on hour and a sparse KEYS_ONLY index on pending
    meter = new_meter()
    # WHEN one order enters both indexes and another carries no `pending`
    both = put(meter, "orders", {"pk": s("o1"), "hour": s("h#1"), "pending": s("w1"), "created": n(5)})
    sparse = put(meter, "orders", {"pk": s("o2"), "hour": s("h#1")})
    # THEN the first costs table + 2 index writes, the second table + 1
    assert sorted((c.target, c.units) for c in both) == [("orders", 1), ("orders/by_hour", 1), ("orders/pending", 1)]
    assert sorted((c.target, c.units) for c in sparse) == [("orders", 1), ("orders/by_hour", 1)]


def test_index__update_changes_index_key__delete_plus_put():
    # GIVEN an order in hour bucket 1
    meter = new_meter()
    put(meter, "orders", {"pk": s("o1"), "hour": s("h#1")})
    # WHEN an update moves it to bucket 2
    params = {"TableName": "orders", "Key": {"pk": s("o1")}, "UpdateExpression": "SET hour = :h",
              "ExpressionAttributeValues": {":h": s("h#2")}}
    charges = meter.record_call("dynamodb", "UpdateItem", params, {})
    # THEN the index pays a delete and a put
    assert [(c.target, c.units) for c in charges if c.index] == [("orders/by_hour", 2)]


def test_index__update_removes_sparse_key__one_delete_and_keys_only_ignores_other_attributes():
    # GIVEN a pending order (in both indexes)
    meter = new_meter()
    put(meter, "orders", {"pk": s("o1"), "hour": s("h#1"), "pending": s("w1"), "created": n(5), "status": n(1)})
    # WHEN crediting sets status and removes `pending`
    params = {"TableName": "orders", "Key": {"pk": s("o1")}, "UpdateExpression": "SET #s = :s REMOVE #p",
              "ExpressionAttributeNames": {"#s": "status", "#p": "pending"}, "ExpressionAttributeValues": {":s": n(8)}}
    credit = meter.record_call("dynamodb", "UpdateItem", params, {})
    # THEN the ALL index rewrites the entry (status is projected) and the sparse index deletes it
    assert sorted((c.target, c.units) for c in credit if c.index) == [("orders/by_hour", 1), ("orders/pending", 1)]
    # AND a later change of a non-key attribute costs the ALL index one write, the KEYS_ONLY index none
    note = {"TableName": "orders", "Key": {"pk": s("o1")}, "UpdateExpression": "SET note = :v",
            "ExpressionAttributeValues": {":v": s("x")}}
    again = meter.record_call("dynamodb", "UpdateItem", note, {})
    assert [(c.target, c.units) for c in again if c.index] == [("orders/by_hour", 1)]


# --- reads ---------------------------------------------------------------------------------------

def test_query__total_size_rounded_once__batch_get_rounds_per_item():
    # GIVEN ten 1 000-byte items under one partition
    meter = new_meter()
    items = [sized_item(f"k{i}", 1000) for i in range(10)]
    for item in items:
        put(meter, "plain", item)
    # WHEN a Query returns all ten, and a BatchGetItem reads the same ten (eventually consistent)
    query = meter.record_call("dynamodb", "Query", {"TableName": "plain"}, {"Items": items, "Count": 10,
                                                                            "ScannedCount": 10})
    batch = meter.record_call("dynamodb", "BatchGetItem",
                              {"RequestItems": {"plain": {"Keys": [{"pk": i["pk"]} for i in items]}}},
                              {"Responses": {"plain": items}})
    # THEN the Query pays for 10 000 bytes at once (3 x 4 KB x 0.5) and the batch 10 x 0.5
    assert units(query) == 1.5
    assert units(batch) == 5.0


def test_get_item__missing_item__costs_the_minimum():
    # GIVEN no item WHEN read strongly and eventually consistent THEN 1 and 0.5 units
    meter = new_meter()
    strong = meter.record_call("dynamodb", "GetItem", {"TableName": "plain", "Key": {"pk": s("x")},
                                                        "ConsistentRead": True}, {})
    eventual = meter.record_call("dynamodb", "GetItem", {"TableName": "plain", "Key": {"pk": s("x")}}, {})
    assert (units(strong), units(eventual)) == (1, 0.5)
    assert meter.usage().rru == 1.5


# --- update expressions --------------------------------------------------------------------------

def test_apply_update__set_if_not_exists_add_remove_arithmetic__as_dynamodb_does():
    # GIVEN a wallet with a balance and a pending marker
    item = {"id": s("w"), "balance": n(100), "name": s("old"), "pending": s("x")}
    expression = ("SET #n = if_not_exists(#n, :name), #c = if_not_exists(#c, :one), #t = #b + :a "
                  "ADD #b :a, #tags :tags REMOVE #p")
    names = {"#n": "name", "#c": "created", "#t": "total", "#b": "balance", "#tags": "tags", "#p": "pending"}
    values = {":name": s("new"), ":one": n(1), ":a": n(50), ":tags": {"SS": ["a"]}}
    # WHEN the update is applied
    after = apply_update(item, {"id": s("w")}, expression, names, values)
    # THEN every right-hand side used the item as it was before, and the input is untouched
    assert after == {"id": s("w"), "balance": n(150), "name": s("old"), "created": n(1), "total": n(150),
                     "tags": {"SS": ["a"]}}
    assert item["balance"] == n(100) and "pending" in item


# --- SQS and prices ------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "expected"), [(0, 1), (7 * 1024, 1), (64 * 1024, 1), (10 * 7 * 1024, 2)])
def test_sqs_requests__per_started_64kb_chunk__empty_is_one(payload, expected):
    # GIVEN one API call's payload WHEN billed THEN one request per started 64 KB, at least one
    assert sqs_requests(payload) == expected


def test_meter__sqs_batch_send_and_empty_receive__billed_per_chunk_and_call():
    # GIVEN ten 7 KB messages sent in one batch, then an empty receive
    meter = new_meter()
    entries = [{"Id": str(i), "MessageBody": "m" * 7 * 1024} for i in range(10)]
    meter.record_call("sqs", "SendMessageBatch", {"Entries": entries}, {"Successful": entries})
    meter.record_call("sqs", "ReceiveMessage", {"MaxNumberOfMessages": 10}, {})
    usage = meter.usage()
    # THEN 2 API calls bill 3 requests (70 KB = 2 chunks, empty receive = 1)
    assert (usage.sqs_api_calls, usage.sqs_billed) == (2, 3)
    assert usage.sqs_messages == {"sent": 10, "received": 0, "empty_receives": 1}


def test_meter__scopes__figures_kept_apart():
    # GIVEN a 100-byte put and an invocation in "grant", a 2 000-byte put in "credit"
    meter = new_meter()
    with meter.scope("grant"):
        put(meter, "plain", sized_item("a", 100))
        meter.record_invocation("api", 0.2)
    with meter.scope("credit"):
        put(meter, "plain", sized_item("b", 2000))
    # THEN each scope holds only its own figures, and the whole run their sum
    assert (meter.usage("grant").wru, meter.usage("credit").wru, meter.usage().wru) == (1, 2, 3)
    assert meter.usage("credit").invocations == {}


def test_cost__list_prices__per_line_item():
    # GIVEN a million of each billed unit, and a million 100 ms invocations at 512 MB
    usage = Usage(wru=1e6, rru=1e6, sqs_billed=1_000_000, http_requests=1_000_000)
    usage.invocations["api"] = 1_000_000
    usage.invocation_s["api"] = 100_000.0
    # WHEN priced at us-east-1 list prices (x86_64)
    dollars = cost(usage, Prices(), memory_mb=512)
    # THEN each line is its list price; 50 000 GB-s of duration
    assert dollars["dynamodb_writes"] == pytest.approx(0.625)
    assert dollars["dynamodb_reads"] == pytest.approx(0.125)
    assert dollars["sqs"] == pytest.approx(0.40)
    assert dollars["lambda_requests"] == pytest.approx(0.20)
    assert dollars["lambda_duration"] == pytest.approx(50_000 * 0.0000166667)
    assert dollars["api_gateway"] == pytest.approx(3.50)
    assert dollars["total"] == pytest.approx(0.625 + 0.125 + 0.40 + 0.20 + 50_000 * 0.0000166667 + 3.50)
    # AND on arm64 (what .chalice/config.json deploys) the duration is priced at the arm64 rate
    arm = cost(usage, Prices(lambda_architecture="arm64"), memory_mb=512)
    assert arm["lambda_duration"] == pytest.approx(50_000 * 0.0000133334)


def test_index__local_index_entry__charged_with_100_byte_overhead():
    # GIVEN a table with an ALL local index (as DynamoDB Local charges, measured: a 941-byte entry costs 2)
    table = TableSchema("ledger", ("wallet", "entry"), (IndexSchema("by_time", ("wallet", "time"), "ALL", local=True),))
    meter = Meter({"ledger": table})
    base = {"wallet": s("w"), "entry": s("e1"), "time": s("t")}
    small = {**base, "p": s("x" * (841 - item_size(base) - 1))}
    large = {**base, "entry": s("e2"), "p": s("x" * (941 - item_size(base) - 1))}
    # WHEN an 841-byte and a 941-byte entry are put
    charges = [meter.record_call("dynamodb", "PutItem", {"TableName": "ledger", "Item": i}, {}) for i in (small, large)]
    # THEN the table pays 1 unit each, the local index 1 and 2 (entry + 100 bytes crosses 1 KB)
    assert [[(c.target, c.units) for c in call] for call in charges] == [
        [("ledger", 1), ("ledger/by_time", 1)], [("ledger", 1), ("ledger/by_time", 2)]]
