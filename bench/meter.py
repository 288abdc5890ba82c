"""A request and capacity meter: what a run on the local stack would cost on AWS, counted per call.

DynamoDB Local's `ReturnConsumedCapacity` undercounts transactions (2.0 for a 3-item transaction that
AWS bills 6.0) and ignores index writes, so the meter recomputes every call's capacity by AWS's
documented rules instead. It hooks botocore clients (`before-parameter-build` keeps the request,
`after-call` charges it with the answer) and keeps a *shadow* of every item it has seen written, so
that it knows an item's size before and after an update and which secondary indexes hold it.

Rules (AWS DynamoDB Developer Guide: "Item sizes and formats", "Read and write operations",
"Capacity management for transactions", GSI/LSI "throughput considerations"):
- item size = sum over attributes of (UTF-8 name length + value size); strings: UTF-8 bytes; numbers:
  1 byte per 2 significant digits + 1 (+1 when negative, an approximation); binary: raw bytes; bool and
  null: 1; list/map: 3 + per element (1 + element size, + key length for maps); sets: sum of elements.
- writes: ceil(size / 1 KB) write units per item, at least 1. PutItem counts the larger of the old and
  new item; UpdateItem the larger of the item before and after; DeleteItem the deleted item.
  TransactWriteItems: 2x per item (prepare + commit), a ConditionCheck item too.
- a conditional write whose condition fails still consumes: the larger of the existing and the new
  item's size when the item exists, 1 unit when it does not. A cancelled transaction is charged as if
  every item had been written (2x), without index writes: AWS does not document this case; it is an
  upper bound and the meter counts cancelled transactions separately so their weight is visible.
- secondary indexes: an item is in an index when it has all the index's key attributes. Per index and
  write: entering or leaving it costs one write of the projected entry; a changed index key costs a
  delete plus a put; a change of a projected attribute only costs one write; anything else is free.
  Index writes are standard writes (not doubled in transactions). Projected entry = table keys + index
  keys + projected attributes (ALL: the whole item); a local index entry also carries the 100-byte
  index-item overhead (DynamoDB Local charges it that way, and only for local indexes).
- reads: ceil(size / 4 KB) units, x0.5 eventually consistent, x1 strongly consistent, x2 transactional;
  a missing item costs the minimum (0.5 or 1). BatchGetItem rounds per item; Query and Scan round the
  *total* of the items read (index queries: their projected entries), at least one unit.
- SQS bills each API call as one request per started 64 KB of payload (a batch of ten 1 KB messages is
  one request); an empty ReceiveMessage is one request.

Cross-checked: on non-transactional calls (where DynamoDB Local applies AWS's rules) the meter's figures
equal DynamoDB Local's `ReturnConsumedCapacity`, call by call (`bench/rain.py` checks it on every run).

Approximations: sizes of items the meter never saw written are taken from the answer that returned
them (or assumed absent); concurrent updates of one item may apply to the shadow in a different order
than DynamoDB applied them (sizes differ by a few bytes at most); Query/Scan with a filter estimates
the filtered-out items at the mean size of the returned ones; PartiQL calls are counted, not charged;
a replayed ClientRequestToken (AWS bills it as a read) is charged as a new write.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.capacity_rules import (
    EVENTUAL,
    STRONG,
    TRANSACTIONAL,
    IndexSchema,
    Item,
    TableSchema,
    apply_update,
    index_write_units,
    item_size,
    projected,
    read_units,
    sqs_requests,
    write_units,
)

# --- the meter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """Capacity one call consumed in one table or index."""

    table: str
    index: str | None
    units: float
    kind: str  # "write" or "read"

    @property
    def target(self) -> str:
        """`table` or `table/index`."""
        return self.table if self.index is None else f"{self.table}/{self.index}"


@dataclass
class Usage:
    """What a run (or some of its scopes) used; every figure is a total over the calls it covers."""

    wru: float = 0.0
    rru: float = 0.0
    wru_by: Counter = field(default_factory=Counter)
    rru_by: Counter = field(default_factory=Counter)
    dynamodb_calls: Counter = field(default_factory=Counter)
    sqs_calls: Counter = field(default_factory=Counter)
    sqs_billed: int = 0
    sqs_messages: Counter = field(default_factory=Counter)
    other_calls: Counter = field(default_factory=Counter)
    invocations: Counter = field(default_factory=Counter)
    invocation_s: Counter = field(default_factory=Counter)
    http_requests: int = 0
    cancelled_transactions: int = 0
    failed_conditions: int = 0
    local_reported_capacity: float = 0.0
    unmetered: Counter = field(default_factory=Counter)

    @property
    def dynamodb_requests(self) -> int:
        """DynamoDB API calls."""
        return sum(self.dynamodb_calls.values())

    @property
    def sqs_api_calls(self) -> int:
        """SQS API calls (each may bill more than one request)."""
        return sum(self.sqs_calls.values())


@dataclass(frozen=True)
class Prices:
    """AWS list prices (US East, N. Virginia), on-demand, without free tiers."""

    region: str = "us-east-1"
    dynamodb_wru_per_million: float = 0.625
    dynamodb_rru_per_million: float = 0.125
    sqs_per_million: float = 0.40
    lambda_requests_per_million: float = 0.20
    lambda_gb_second_x86: float = 0.0000166667
    lambda_gb_second_arm64: float = 0.0000133334
    lambda_architecture: str = "x86_64"
    api_gateway_rest_per_million: float = 3.50
    secrets_manager_per_10k: float = 0.05

    @property
    def lambda_gb_second(self) -> float:
        """Duration price for the chosen architecture."""
        return self.lambda_gb_second_arm64 if self.lambda_architecture == "arm64" else self.lambda_gb_second_x86

    def describe(self) -> str:
        """One line naming every price used."""
        return (f"{self.region} list prices: DynamoDB on-demand ${self.dynamodb_wru_per_million}/M write request "
                f"units, ${self.dynamodb_rru_per_million}/M read request units; SQS standard ${self.sqs_per_million}/M "
                f"requests (64 KB chunks); Lambda ${self.lambda_requests_per_million}/M requests + "
                f"${self.lambda_gb_second:.10f}/GB-s ({self.lambda_architecture}); API Gateway REST "
                f"${self.api_gateway_rest_per_million}/M requests; Secrets Manager ${self.secrets_manager_per_10k}/10k "
                "calls; no free tier")


def cost(usage: Usage, prices: Prices, memory_mb: int) -> dict[str, float]:
    """Dollar cost of a usage, by line item, plus `total`. Lambda duration is billed per ms at `memory_mb`."""
    gb_seconds = sum(usage.invocation_s.values()) * memory_mb / 1024
    secrets_calls = sum(n for (service, _), n in usage.other_calls.items() if service == "secretsmanager")
    lines = {
        "dynamodb_writes": usage.wru * prices.dynamodb_wru_per_million / 1e6,
        "dynamodb_reads": usage.rru * prices.dynamodb_rru_per_million / 1e6,
        "sqs": usage.sqs_billed * prices.sqs_per_million / 1e6,
        "lambda_requests": sum(usage.invocations.values()) * prices.lambda_requests_per_million / 1e6,
        "lambda_duration": gb_seconds * prices.lambda_gb_second,
        "api_gateway": usage.http_requests * prices.api_gateway_rest_per_million / 1e6,
        "secrets_manager": secrets_calls * prices.secrets_manager_per_10k / 1e4,
    }
    lines["total"] = sum(lines.values())
    return lines


def _error_code(parsed: Mapping[str, Any]) -> str | None:
    code = (parsed.get("Error") or {}).get("Code")
    return code.split("#")[-1] if code else None


class Meter:
    """Counts requests and capacity of every call made through the clients it is attached to.

    Thread-safe. Figures are grouped by *scope* (`with meter.scope("grant"):`), a process-wide label so
    that worker threads started inside a scope are counted in it.
    """

    def __init__(self, schemas: Mapping[str, TableSchema]) -> None:
        self.schemas = dict(schemas)
        self._items: dict[str, dict[tuple, Item]] = {name: {} for name in self.schemas}
        self._counts: Counter = Counter()
        self._lock = threading.Lock()
        self._scope = "default"
        self._attached: dict[int, Any] = {}
        self._local = threading.local()

    # -- scopes and overhead --

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Count everything inside the block under `name` (process-wide)."""
        previous, self._scope = self._scope, name
        try:
            yield
        finally:
            self._scope = previous

    def overhead_s(self) -> float:
        """Seconds this thread has spent inside the meter's hooks (to subtract from measured durations)."""
        return getattr(self._local, "overhead", 0.0)

    def _add_overhead(self, seconds: float) -> None:
        self._local.overhead = self.overhead_s() + seconds

    # -- attaching --

    def attach(self, client: Any) -> None:
        """Hook a botocore/boto3 client (DynamoDB, SQS or any other service, which is only counted)."""
        if id(client) in self._attached:
            return
        self._attached[id(client)] = client
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-parameter-build.{service_id}", self._before)
        client.meta.events.register(f"after-call.{service_id}", self._after)

    def is_attached(self, client: Any) -> bool:
        """Whether this exact client object is hooked."""
        return self._attached.get(id(client)) is client

    def _before(self, params: Any, model: Any, context: Any, **_: Any) -> None:
        context["rg_meter_params"] = params

    def _after(self, http_response: Any, parsed: Any, model: Any, context: Any, **_: Any) -> None:
        started = time.perf_counter()
        try:
            params = context.get("rg_meter_params") or {}
            service = model.service_model.service_name
            status = getattr(http_response, "status_code", 200)
            self.record_call(service, model.name, params, parsed or {}, status)
        finally:
            self._add_overhead(time.perf_counter() - started)

    # -- recording --

    def record_call(self, service: str, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any],
                    status: int = 200) -> list[Charge]:
        """Count one API call and charge its capacity; returns the DynamoDB charges (for tests)."""
        if service == "dynamodb":
            with self._lock:
                charges = self._dynamodb(operation, params, parsed, status)
                scope = self._scope
                self._counts[("dynamodb_call", scope, operation)] += 1
                for charge in charges:
                    self._counts[(charge.kind, scope, charge.target)] += charge.units
                capacity = parsed.get("ConsumedCapacity")
                for entry in capacity if isinstance(capacity, list) else [capacity] if capacity else []:
                    self._counts[("local_reported", scope)] += float(entry.get("CapacityUnits") or 0)
            return charges
        with self._lock:
            scope = self._scope
            if service == "sqs":
                self._sqs(scope, operation, params, parsed, status)
            else:
                self._counts[("other_call", scope, service, operation)] += 1
        return []

    def record_invocation(self, function: str, seconds: float) -> None:
        """Count one Lambda invocation of `function` that ran for `seconds` (billed duration)."""
        with self._lock:
            self._counts[("invocation", self._scope, function)] += 1
            self._counts[("invocation_s", self._scope, function)] += max(seconds, 0.001)

    def record_http(self, count: int = 1) -> None:
        """Count API Gateway requests."""
        with self._lock:
            self._counts[("http", self._scope)] += count

    # -- SQS --

    def _sqs(self, scope: str, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any],
             status: int) -> None:
        self._counts[("sqs_call", scope, operation)] += 1
        payload = 0
        if operation == "SendMessage":
            payload = _message_bytes(params)
            self._counts[("sqs_messages", scope, "sent")] += int(status < 300)
        elif operation == "SendMessageBatch":
            entries = params.get("Entries") or []
            payload = sum(_message_bytes(e) for e in entries)
            self._counts[("sqs_messages", scope, "sent")] += len(parsed.get("Successful") or [])
        elif operation == "ReceiveMessage":
            messages = parsed.get("Messages") or []
            payload = sum(_message_bytes(m) for m in messages)
            self._counts[("sqs_messages", scope, "received")] += len(messages)
            self._counts[("sqs_messages", scope, "empty_receives")] += int(not messages)
        elif operation in ("DeleteMessage", "DeleteMessageBatch"):
            deleted = 1 if operation == "DeleteMessage" else len(parsed.get("Successful") or [])
            self._counts[("sqs_messages", scope, "deleted")] += deleted
        self._counts[("sqs_billed", scope)] += sqs_requests(payload)

    # -- DynamoDB --

    def _table(self, name: str) -> TableSchema:
        schema = self.schemas.get(name)
        if schema is None:
            raise KeyError(f"the meter has no schema for table {name!r}")
        return schema

    def item(self, table: str, key: Mapping[str, Any]) -> Item | None:
        """The meter's copy of an item (by any mapping holding its key attributes)."""
        schema = self._table(table)
        return self._items[table].get(schema.key_of(key))

    def _store(self, table: str, item: Item | None, key: Mapping[str, Any]) -> None:
        schema = self._table(table)
        if item is None:
            self._items[table].pop(schema.key_of(key), None)
        else:
            self._items[table][schema.key_of(key)] = item

    def _write(self, table: str, key: Mapping[str, Any], old: Item | None, new: Item | None, factor: float,
               committed: bool, condition_failed: bool = False) -> list[Charge]:
        """Charges of one item write; `new` None = delete. Index writes only when committed."""
        schema = self._table(table)
        if condition_failed and old is None:
            units = 1
        else:
            units = write_units(max(item_size(old), item_size(new)))
        charges = [Charge(table, None, units * factor, "write")]
        if committed:
            for index in schema.indexes:
                index_units = index_write_units(schema, index, old, new)
                if index_units:
                    charges.append(Charge(table, index.name, float(index_units), "write"))
            self._store(table, new, key)
        return charges

    def _dynamodb(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any],
                  status: int) -> list[Charge]:
        code = _error_code(parsed) if status >= 300 else None
        failed_condition = code == "ConditionalCheckFailedException"
        if code is not None and not failed_condition and code != "TransactionCanceledException":
            return []  # validation errors, throttling, ...: nothing was read or written
        if failed_condition:
            self._counts[("failed_conditions", self._scope)] += 1
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            self._counts[("unmetered", self._scope, operation)] += 1
            return []
        return handler(params, parsed, failed_condition, code)

    def _op_PutItem(self, params: Mapping[str, Any], parsed: Any, failed: bool, code: Any) -> list[Charge]:
        table, new = params["TableName"], params["Item"]
        return self._write(table, new, self.item(table, new), new, 1.0, not failed, failed)

    def _op_UpdateItem(self, params: Mapping[str, Any], parsed: Any, failed: bool, code: Any) -> list[Charge]:
        table, key = params["TableName"], params["Key"]
        old = self.item(table, key)
        new = apply_update(old, key, params.get("UpdateExpression"), params.get("ExpressionAttributeNames"),
                           params.get("ExpressionAttributeValues"))
        return self._write(table, key, old, new, 1.0, not failed, failed)

    def _op_DeleteItem(self, params: Mapping[str, Any], parsed: Any, failed: bool, code: Any) -> list[Charge]:
        table, key = params["TableName"], params["Key"]
        return self._write(table, key, self.item(table, key), None, 1.0, not failed, failed)

    def _op_BatchWriteItem(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                           code: Any) -> list[Charge]:
        unprocessed = parsed.get("UnprocessedItems") or {}
        charges: list[Charge] = []
        for table, requests in (params.get("RequestItems") or {}).items():
            skipped = {json.dumps(r, sort_keys=True, default=str) for r in unprocessed.get(table, [])}
            for request in requests:
                if json.dumps(request, sort_keys=True, default=str) in skipped:
                    continue
                if "PutRequest" in request:
                    new = request["PutRequest"]["Item"]
                    charges += self._write(table, new, self.item(table, new), new, 1.0, True)
                else:
                    key = request["DeleteRequest"]["Key"]
                    charges += self._write(table, key, self.item(table, key), None, 1.0, True)
        return charges

    def _op_TransactWriteItems(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                               code: Any) -> list[Charge]:
        cancelled = code == "TransactionCanceledException"
        if cancelled:
            self._counts[("cancelled_transactions", self._scope)] += 1
        planned = []
        for entry in params.get("TransactItems") or []:
            (action, body), = entry.items()
            table = body["TableName"]
            if action == "Put":
                key, old, new = body["Item"], self.item(table, body["Item"]), body["Item"]
            elif action == "Update":
                key = body["Key"]
                old = self.item(table, key)
                new = apply_update(old, key, body.get("UpdateExpression"), body.get("ExpressionAttributeNames"),
                                   body.get("ExpressionAttributeValues"))
            elif action == "Delete":
                key, old, new = body["Key"], self.item(table, body["Key"]), None
            else:  # ConditionCheck: billed as a write of the checked item, which stays as it is
                key = body["Key"]
                old = new = self.item(table, key)
            planned.append((table, key, old, new))
        charges: list[Charge] = []
        for table, key, old, new in planned:
            charges += self._write(table, key, old, new, TRANSACTIONAL, committed=not cancelled)
        return charges

    def _stored_size(self, table: str, item: Mapping[str, Any], index: IndexSchema | None) -> int:
        full = self.item(table, item)
        if full is None:
            return item_size(item)
        if index is None:
            return item_size(full)
        return item_size(projected(self._table(table), index, full))

    def _op_GetItem(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                    code: Any) -> list[Charge]:
        table = params["TableName"]
        found = parsed.get("Item")
        size = self._stored_size(table, found, None) if found else 0
        return [Charge(table, None, read_units(size, STRONG if params.get("ConsistentRead") else EVENTUAL), "read")]

    def _op_BatchGetItem(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                         code: Any) -> list[Charge]:
        charges = []
        responses = parsed.get("Responses") or {}
        unprocessed = parsed.get("UnprocessedKeys") or {}
        for table, request in (params.get("RequestItems") or {}).items():
            schema = self._table(table)
            consistency = STRONG if request.get("ConsistentRead") else EVENTUAL
            found = {schema.key_of(item): item for item in responses.get(table, [])}
            skipped = {schema.key_of(k) for k in (unprocessed.get(table) or {}).get("Keys", [])}
            for key in request.get("Keys", []):
                key_id = schema.key_of(key)
                if key_id in skipped:
                    continue
                item = found.get(key_id)
                size = self._stored_size(table, item, None) if item else 0
                charges.append(Charge(table, None, read_units(size, consistency), "read"))
        return charges

    def _op_TransactGetItems(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                             code: Any) -> list[Charge]:
        charges = []
        responses = parsed.get("Responses") or []
        for position, entry in enumerate(params.get("TransactItems") or []):
            table = entry["Get"]["TableName"]
            found = responses[position].get("Item") if position < len(responses) else None
            size = self._stored_size(table, found, None) if found else 0
            charges.append(Charge(table, None, read_units(size, TRANSACTIONAL), "read"))
        return charges

    def _scan_like(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> list[Charge]:
        table = params["TableName"]
        index_name = params.get("IndexName")
        index = self._table(table).index(index_name) if index_name else None
        items = parsed.get("Items") or []
        sizes = [self._stored_size(table, item, index) for item in items]
        scanned = int(parsed.get("ScannedCount") or len(items))
        total = sum(sizes)
        if scanned > len(items):
            # Filtered out (or Select=COUNT): read but not returned; estimated at the mean returned size,
            # else at the mean size of what the meter holds for that table.
            mean = total / len(items) if items else self._mean_size(table, index)
            total += int(mean * (scanned - len(items)))
        consistent = params.get("ConsistentRead") and not (index and not index.local)
        return [Charge(table, index_name, read_units(total, STRONG if consistent else EVENTUAL), "read")]

    def _mean_size(self, table: str, index: IndexSchema | None) -> float:
        items = list(self._items[table].values())
        if not items:
            return 0.0
        schema = self._table(table)
        return sum(item_size(projected(schema, index, i) if index else i) for i in items) / len(items)

    def _op_Query(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                  code: Any) -> list[Charge]:
        return self._scan_like(params, parsed)

    def _op_Scan(self, params: Mapping[str, Any], parsed: Mapping[str, Any], failed: bool,
                 code: Any) -> list[Charge]:
        return self._scan_like(params, parsed)

    def _op_DescribeTable(self, params: Any, parsed: Any, failed: bool, code: Any) -> list[Charge]:
        return []  # control plane: no capacity

    _op_ListTables = _op_DescribeTable
    _op_CreateTable = _op_DescribeTable
    _op_UpdateTimeToLive = _op_DescribeTable
    _op_DescribeTimeToLive = _op_DescribeTable

    # -- reading the figures --

    def item_sizes(self, table: str) -> tuple[int, float, int]:
        """(items, mean size, largest size) in bytes of the items the meter holds for a table."""
        with self._lock:
            sizes = [item_size(item) for item in self._items[table].values()]
        return len(sizes), (sum(sizes) / len(sizes) if sizes else 0.0), max(sizes, default=0)

    def scopes(self) -> list[str]:
        """Every scope something was counted in."""
        with self._lock:
            return sorted({key[1] for key in self._counts})

    def usage(self, scopes: str | Iterable[str] | None = None) -> Usage:
        """Totals over the given scopes (all when None)."""
        wanted = {scopes} if isinstance(scopes, str) else set(scopes) if scopes is not None else None
        out = Usage()
        with self._lock:
            counts = list(self._counts.items())
        for key, value in counts:
            kind, scope, *rest = key
            if wanted is not None and scope not in wanted:
                continue
            if kind == "write":
                out.wru += value
                out.wru_by[rest[0]] += value
            elif kind == "read":
                out.rru += value
                out.rru_by[rest[0]] += value
            elif kind == "dynamodb_call":
                out.dynamodb_calls[rest[0]] += value
            elif kind == "sqs_call":
                out.sqs_calls[rest[0]] += value
            elif kind == "sqs_billed":
                out.sqs_billed += value
            elif kind == "sqs_messages":
                out.sqs_messages[rest[0]] += value
            elif kind == "other_call":
                out.other_calls[(rest[0], rest[1])] += value
            elif kind == "invocation":
                out.invocations[rest[0]] += value
            elif kind == "invocation_s":
                out.invocation_s[rest[0]] += value
            elif kind == "http":
                out.http_requests += value
            elif kind == "cancelled_transactions":
                out.cancelled_transactions += value
            elif kind == "failed_conditions":
                out.failed_conditions += value
            elif kind == "local_reported":
                out.local_reported_capacity += value
            elif kind == "unmetered":
                out.unmetered[rest[0]] += value
        return out


def _message_bytes(message: Mapping[str, Any]) -> int:
    size = len(str(message.get("MessageBody", message.get("Body", ""))).encode())
    for name, attribute in (message.get("MessageAttributes") or {}).items():
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or b""
        size += len(name.encode()) + len(str(attribute.get("DataType", "")).encode()) + len(
            value if isinstance(value, bytes) else str(value).encode())
    return size


def attach_rewardgate(meter: Meter) -> list[Any]:
    """Attach the meter to every client rewardgate's code uses: each model's PynamoDB connection, the
    transaction connection (`chalicelib.dynamo.connection()`), and the shared SQS and Secrets Manager
    clients. Returns the clients (to check later, with `meter.is_attached`, that none was replaced)."""
    from chalicelib import clients, dynamo

    hooked = [model._get_connection().connection.client for model in dynamo.all_models()]
    hooked += [dynamo.connection().client, clients.sqs(), clients.secretsmanager()]
    for client in hooked:
        meter.attach(client)
    return hooked


def all_still_attached(meter: Meter) -> bool:
    """True when every client rewardgate would use now is one the meter hooked (PynamoDB may rebuild one)."""
    from chalicelib import clients, dynamo

    current = [model._get_connection().connection.client for model in dynamo.all_models()]
    current += [dynamo.connection().client, clients.sqs(), clients.secretsmanager()]
    return all(meter.is_attached(c) for c in current)
