"""AWS's billing rules for DynamoDB and SQS, as pure functions: item sizes, capacity units, index writes,
update expressions (to know an item's size after an update) and SQS request chunks.

Sources: AWS DynamoDB Developer Guide ("Item sizes and formats", "Read and write operations",
"Capacity management for transactions", the GSI and LSI "throughput considerations"), the SQS pricing
rule (one request per started 64 KB of payload). `bench.meter` applies them to real calls; the rules and
their approximations are listed in its docstring and in bench/README.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

KB = 1024
READ_BLOCK = 4 * KB
SQS_CHUNK = 64 * KB
LSI_ENTRY_OVERHEAD = 100

EVENTUAL = 0.5
STRONG = 1.0
TRANSACTIONAL = 2.0

Item = dict[str, Any]  # DynamoDB wire format: {"name": {"S": "..."}, ...}


# --- item sizes --------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """Bytes DynamoDB stores a number in: 1 per two significant digits, plus 1 (plus 1 if negative)."""
    sign, digits, _ = Decimal(text).as_tuple()
    significant = "".join(str(d) for d in digits).strip("0") or "0"
    return (len(significant) + 1) // 2 + 1 + (1 if sign and significant != "0" else 0)


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    # botocore takes base64 text too; DynamoDB counts the raw bytes.
    text = str(value)
    return len(text) * 3 // 4 - text.count("=")


def value_size(value: Mapping[str, Any]) -> int:
    """Size of one wire-format attribute value, without its name."""
    (kind, data), = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return _binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(number_size(n) for n in data)
    if kind == "BS":
        return sum(_binary_size(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    """Size of a wire-format item: attribute names plus values."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    """Standard write units for an item of `size` bytes: per started KB, at least one."""
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistency: float) -> float:
    """Read units for `size` bytes read at once (0 = a missing item: the minimum)."""
    return max(1, math.ceil(size / READ_BLOCK)) * consistency


def sqs_requests(payload_bytes: int) -> int:
    """Billed SQS requests for one API call carrying `payload_bytes`: one per started 64 KB chunk."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK))


# --- schemas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSchema:
    """A secondary index: its key attributes and what it projects."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"  # ALL | KEYS_ONLY | INCLUDE
    non_key: tuple[str, ...] = ()
    local: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A table's key attributes and secondary indexes."""

    name: str
    keys: tuple[str, ...]
    indexes: tuple[IndexSchema, ...] = ()

    def key_of(self, item: Mapping[str, Any]) -> tuple:
        """Hashable primary key of a wire-format item (or key)."""
        return tuple(_hashable(item.get(k)) for k in self.keys)

    def index(self, name: str) -> IndexSchema:
        """One of the table's indexes by name."""
        return next(i for i in self.indexes if i.name == name)


def _hashable(value: Mapping[str, Any] | None) -> Any:
    if value is None:
        return None
    (kind, data), = value.items()
    return kind, data if isinstance(data, str | bytes | bool) else json.dumps(data, sort_keys=True, default=str)


def projected(table: TableSchema, index: IndexSchema, item: Mapping[str, Any]) -> Item:
    """The entry an item has in an index: table keys, index keys and the projected attributes."""
    if index.projection == "ALL":
        return dict(item)
    wanted = set(table.keys) | set(index.keys) | (set(index.non_key) if index.projection == "INCLUDE" else set())
    return {k: v for k, v in item.items() if k in wanted}


def schemas_from_cloudformation(resources: Mapping[str, Any]) -> dict[str, TableSchema]:
    """Table schemas (by physical name) from CloudFormation resources such as `infra.template.data_resources`."""
    schemas = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]

        def keys(schema: list[dict[str, str]]) -> tuple[str, ...]:
            return tuple(k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH"))

        indexes = [
            IndexSchema(name=ix["IndexName"], keys=keys(ix["KeySchema"]), projection=ix["Projection"]["ProjectionType"],
                        non_key=tuple(ix["Projection"].get("NonKeyAttributes", ())), local=local)
            for local, group in ((False, "GlobalSecondaryIndexes"), (True, "LocalSecondaryIndexes"))
            for ix in props.get(group, [])
        ]
        schemas[props["TableName"]] = TableSchema(props["TableName"], keys(props["KeySchema"]), tuple(indexes))
    return schemas


def index_entry_size(index: IndexSchema, entry: Mapping[str, Any]) -> int:
    """Size an index entry is charged at: its attributes, plus the 100-byte index-item overhead for a local
    index (what DynamoDB Local charges; AWS documents that overhead for index storage)."""
    return item_size(entry) + (LSI_ENTRY_OVERHEAD if index.local else 0)


def index_write_units(table: TableSchema, index: IndexSchema, old: Item | None, new: Item | None) -> int:
    """Write units one table write costs in one secondary index (AWS's GSI/LSI write rules)."""
    in_old = old is not None and all(k in old for k in index.keys)
    in_new = new is not None and all(k in new for k in index.keys)
    if not in_old and not in_new:
        return 0
    old_entry = projected(table, index, old) if in_old else None  # type: ignore[arg-type]
    new_entry = projected(table, index, new) if in_new else None  # type: ignore[arg-type]
    if old_entry is None:
        return write_units(index_entry_size(index, new_entry))  # type: ignore[arg-type]
    if new_entry is None:
        return write_units(index_entry_size(index, old_entry))
    if any(old.get(k) != new.get(k) for k in index.keys):  # type: ignore[union-attr]
        return write_units(index_entry_size(index, old_entry)) + write_units(index_entry_size(index, new_entry))
    if old_entry != new_entry:
        return write_units(max(index_entry_size(index, old_entry), index_entry_size(index, new_entry)))
    return 0


# --- update expressions ------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(#\w+|:\w+|[A-Za-z_]\w*|\d+|[=,()+\-.\[\]])")
_CLAUSES = ("SET", "REMOVE", "ADD", "DELETE")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse update expression at {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def path(self) -> tuple:
        parts: list[Any] = [("name", self.take())]
        while self.peek() in (".", "["):
            if self.take() == ".":
                parts.append(("name", self.take()))
            else:
                parts.append(("index", int(self.take())))
                self.take("]")
        return tuple(parts)

    def operand(self) -> tuple:
        token = self.peek()
        if token is not None and token.lower() in ("if_not_exists", "list_append") and \
                self.pos + 1 < len(self.tokens) and self.tokens[self.pos + 1] == "(":
            function = self.take().lower()
            self.take("(")
            first = ("path", self.path()) if function == "if_not_exists" else self.operand()
            self.take(",")
            second = self.operand()
            self.take(")")
            return (function, first, second)
        if token is not None and token.startswith(":"):
            return ("value", self.take())
        return ("path", self.path())

    def value(self) -> tuple:
        left = self.operand()
        if self.peek() in ("+", "-"):
            op = self.take()
            return (op, left, self.operand())
        return left

    def parse(self) -> list[tuple]:
        actions: list[tuple] = []
        while self.peek() is not None:
            clause = self.take().upper()
            if clause not in _CLAUSES:
                raise ValueError(f"unknown update clause {clause!r}")
            while True:
                target = self.path()
                if clause == "SET":
                    self.take("=")
                    actions.append(("SET", target, self.value()))
                elif clause == "REMOVE":
                    actions.append(("REMOVE", target, None))
                else:
                    actions.append((clause, target, ("value", self.take())))
                if self.peek() != ",":
                    break
                self.take(",")
        return actions


_parsed: dict[str, list[tuple]] = {}


def _resolve(path: tuple, names: Mapping[str, str]) -> list[Any]:
    return [names.get(p, p) if kind == "name" else p for kind, p in path]


def _get(item: Item, path: list[Any]) -> Any:
    node: Any = {"M": item}
    for part in path:
        if isinstance(part, int):
            values = node.get("L") if isinstance(node, dict) else None
            if values is None or part >= len(values):
                return None
            node = values[part]
        else:
            members = node.get("M") if isinstance(node, dict) else None
            if members is None or part not in members:
                return None
            node = members[part]
    return node


def _parent(item: Item, path: list[Any]) -> Any:
    return {"M": item} if len(path) == 1 else _get(item, path[:-1])


def _put(item: Item, path: list[Any], value: Any) -> None:
    parent, last = _parent(item, path), path[-1]
    if parent is None:
        return
    if isinstance(last, int):
        values = parent.setdefault("L", [])
        if last < len(values):
            values[last] = value
        else:
            values.append(value)
    else:
        parent.setdefault("M", {})[last] = value


def _drop(item: Item, path: list[Any]) -> None:
    parent, last = _parent(item, path), path[-1]
    if parent is None:
        return
    if isinstance(last, int):
        values = parent.get("L") or []
        if last < len(values):
            del values[last]
    else:
        (parent.get("M") or {}).pop(last, None)


def _num(text: str) -> Decimal:
    return Decimal(text)


def _num_text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _evaluate(node: tuple, item: Item, names: Mapping[str, str], values: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind == "value":
        return values[node[1]]
    if kind == "path":
        return _get(item, _resolve(node[1], names))
    if kind == "if_not_exists":
        found = _evaluate(node[1], item, names, values)
        return found if found is not None else _evaluate(node[2], item, names, values)
    if kind == "list_append":
        first, second = (_evaluate(n, item, names, values) for n in node[1:])
        return {"L": list((first or {}).get("L", [])) + list((second or {}).get("L", []))}
    left, right = (_evaluate(n, item, names, values) for n in node[1:])
    a, b = _num(left["N"]), _num(right["N"])
    return {"N": _num_text(a + b if kind == "+" else a - b)}


def apply_update(item: Item | None, key: Item, expression: str | None,
                 names: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None) -> Item:
    """The item after an UpdateItem (a new item when `item` is None). Pure: the input is not changed."""
    before = json.loads(json.dumps(item if item is not None else key))
    after = json.loads(json.dumps(before))
    if not expression:
        return after
    actions = _parsed.get(expression)
    if actions is None:
        actions = _parsed.setdefault(expression, _Parser(expression).parse())
    names, values = names or {}, values or {}
    # DynamoDB evaluates every right-hand side against the item as it was before the update.
    for clause, target, operand in actions:
        path = _resolve(target, names)
        if clause == "SET":
            _put(after, path, _evaluate(operand, before, names, values))
        elif clause == "REMOVE":
            _drop(after, path)
        else:
            given, current = values[operand[1]], _get(after, path)
            (kind, data), = given.items()
            if clause == "ADD" and kind == "N":
                total = _num(data) + (_num(current["N"]) if current else 0)
                _put(after, path, {"N": _num_text(total)})
            elif clause == "ADD":
                merged = list(dict.fromkeys([*((current or {}).get(kind) or []), *data]))
                _put(after, path, {kind: merged})
            elif current is not None:
                remaining = [v for v in current.get(kind, []) if v not in set(data)]
                if remaining:
                    _put(after, path, {kind: remaining})
                else:
                    _drop(after, path)
    return after
