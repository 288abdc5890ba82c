"""Derived examples satisfy their schema or refuse to guess: a pattern with no known value raises, so the
operation must declare its own example instead of publishing one its schema refuses."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from chalicelib.edge.examples import UnknownPattern, example
from chalicelib.edge.models import IDENT_PATTERN


def test_example__unknown_pattern__raises_instead_of_guessing():
    with pytest.raises(UnknownPattern, match="declare one on the operation"):
        example({"type": "string", "pattern": "^[xyz]{3}$"}, {}, "code")


@pytest.mark.parametrize("schema", [
    {"type": "integer", "minimum": 5, "maximum": 9},
    {"type": "integer", "exclusiveMinimum": 0},
    {"type": "string", "minLength": 12, "maxLength": 12},
    {"type": "string", "pattern": IDENT_PATTERN},
    {"type": "array", "items": {"type": "integer", "minimum": 3}, "minItems": 2},
    {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]},
    {"type": "object", "properties": {"activity_id": {"type": "string", "pattern": IDENT_PATTERN},
                                      "open_time_ms": {"type": "integer", "minimum": 0}},
     "required": ["activity_id", "open_time_ms"], "additionalProperties": False},
])
def test_example__bounded_schema__value_within_its_bounds(schema):
    value = example(schema, {})
    assert list(Draft202012Validator(schema).iter_errors(value)) == []


def test_example__ref__resolved_in_the_definitions():
    defs = {"Amount": {"type": "integer", "minimum": 1, "maximum": 10}}
    assert example({"$ref": "#/components/schemas/Amount"}, defs, "amount") == 10
