"""`_id` ranges that both sets are read with, so one range at a time can be hashed and compared.

Boundaries come from the source's `_id` index (covered reads: `skip` walks the index on the server, only
one `_id` per range travels). `$gte` / `$lt` compare only within one BSON type bracket, so ranges are
used only when every `_id` on both sides is in the same bracket; otherwise the collection is one range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

import bson
from bson.decimal128 import Decimal128
from pymongo.collection import Collection

# BSON element types that MongoDB compares with each other (one "type bracket").
NUMBER_TYPES = frozenset({0x01, 0x10, 0x12, 0x13})  # double, int32, int64, decimal128
STRING_TYPES = frozenset({0x02, 0x0E})  # string, symbol

IdCondition = dict[str, Any]


def id_type(value: Any) -> int:
    """The BSON element type byte `value` is stored with (as `_id` of a one-field document)."""
    return bson.encode({"_id": value})[4]


def type_bracket(type_byte: int) -> str:
    """The comparison bracket of a BSON type: numbers and strings group several types, the rest stand alone."""
    if type_byte in NUMBER_TYPES:
        return "number"
    if type_byte in STRING_TYPES:
        return "string"
    return f"type-{type_byte:#04x}"


def _is_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().is_nan()
    return False


def single_bracket(ends: Iterable[Any]) -> bool:
    """True when the given `_id`s (each side's smallest and largest) share one bracket and none is NaN.

    Sorting groups brackets, so if both ends of each side agree, every `_id` in between does too.
    NaN sorts below every number but matches no `$lt`, so it forces the single-range fallback.
    """
    brackets = set()
    for value in ends:
        if _is_nan(value):
            return False
        brackets.add(type_bracket(id_type(value)))
    return len(brackets) <= 1


def id_ranges(boundaries: Sequence[Any]) -> list[IdCondition]:
    """`_id` conditions covering everything: (-inf, b1), [b1, b2), ..., [bn, +inf); no boundaries: one range."""
    if not boundaries:
        return [{}]
    conditions: list[IdCondition] = [{"_id": {"$lt": boundaries[0]}}]
    conditions += [{"_id": {"$gte": low, "$lt": high}} for low, high in pairwise(boundaries)]
    conditions.append({"_id": {"$gte": boundaries[-1]}})
    return conditions


def range_step(estimated_docs: int, range_docs: int, max_ranges: int) -> int:
    """Documents per range: `range_docs`, raised so that a collection yields at most about `max_ranges`."""
    return max(range_docs, -(-estimated_docs // max(max_ranges, 1)), 1)


def walk_boundaries(coll: Collection, step: int, limit: int) -> list[Any]:
    """Every `step`-th `_id` of `coll` in index order (excluding the smallest), at most `limit` of them."""
    boundaries: list[Any] = []
    condition: IdCondition = {}
    while len(boundaries) < limit:
        cursor = coll.find(condition, {"_id": 1}).sort("_id", 1).skip(step).limit(1)
        doc = next(iter(cursor), None)
        if doc is None:
            break
        boundaries.append(doc["_id"])
        condition = {"_id": {"$gte": doc["_id"]}}
    return boundaries


def id_ends(coll: Collection) -> list[Any]:
    """The smallest and largest `_id` of `coll` (empty list for an empty collection)."""
    ends = []
    for direction in (1, -1):
        doc = next(iter(coll.find({}, {"_id": 1}).sort("_id", direction).limit(1)), None)
        if doc is not None:
            ends.append(doc["_id"])
    return ends


def plan_ranges(source: Collection, target: Collection, range_docs: int, max_ranges: int) -> list[IdCondition]:
    """The `_id` conditions both sides are read with: source boundaries, or one range for mixed brackets."""
    if not single_bracket([*id_ends(source), *id_ends(target)]):
        return [{}]
    step = range_step(source.estimated_document_count(), range_docs, max_ranges)
    return id_ranges(walk_boundaries(source, step, max_ranges - 1))
