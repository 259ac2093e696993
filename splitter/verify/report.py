"""What `verify` found: immutable results per collection and half, ready for a table or one JSON document."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bson import ObjectId, json_util

RELAXED = json_util.RELAXED_JSON_OPTIONS


def id_to_json(value: Any) -> Any:
    """An `_id` as plain JSON (relaxed Extended JSON: 42, "abc", {"$oid": "..."})."""
    return json.loads(json_util.dumps(value, json_options=RELAXED))


def id_to_text(value: Any) -> str:
    """An `_id` as one short line of text, ObjectIds as mongosh writes them."""
    if isinstance(value, ObjectId):
        return f'ObjectId("{value}")'
    return json_util.dumps(value, json_options=RELAXED)


@dataclass(frozen=True)
class CollectionHalfResult:
    """One routed collection, one half (documents a set owns), compared between source and target.

    `missing`: on the source, not on the target. `extra`: on the target, not on the source.
    `different`: on both, with different bytes. The sample tuples hold at most `samples` `_id`s each;
    the `*_count` fields count every such document in the ranges that differed.
    """

    namespace: str
    half: str
    key: str
    ranges: int
    count_source: int
    count_target: int
    hash_source: str
    hash_target: str
    missing: tuple[Any, ...] = ()
    extra: tuple[Any, ...] = ()
    different: tuple[Any, ...] = ()
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0

    @property
    def ok(self) -> bool:
        return self.count_source == self.count_target and self.hash_source == self.hash_target

    def describe(self, source_name: str = "source", target_name: str = "target") -> str:
        """One sentence for an error message: what differs and a few `_id`s."""
        if self.ok:
            return f"{self.namespace} ({self.half}'s half): equal, {self.count_source} documents"
        parts = [f"{self.namespace} ({self.half}'s half): {source_name} has {self.count_source}, "
                 f"{target_name} has {self.count_target}"]
        for label, count, ids in (("missing on " + target_name, self.missing_count, self.missing),
                                  ("extra on " + target_name, self.extra_count, self.extra),
                                  ("different", self.different_count, self.different)):
            if count:
                shown = ", ".join(id_to_text(i) for i in ids)
                parts.append(f"{count} {label}" + (f" (_id {shown}{', ...' if count > len(ids) else ''})"
                                                   if ids else ""))
        if len(parts) == 1:
            parts.append("same documents but content hashes differ (changed while reading?)")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "half": self.half, "key": self.key, "ok": self.ok, "ranges": self.ranges,
            "count_source": self.count_source, "count_target": self.count_target,
            "hash_source": self.hash_source, "hash_target": self.hash_target,
            "missing": [id_to_json(i) for i in self.missing], "missing_count": self.missing_count,
            "extra": [id_to_json(i) for i in self.extra], "extra_count": self.extra_count,
            "different": [id_to_json(i) for i in self.different], "different_count": self.different_count,
        }


@dataclass(frozen=True)
class UnclaimedCount:
    """Documents of a routed collection that no set owns (key missing or not an integer): shown, not compared."""

    namespace: str
    key: str
    count_source: int
    count_target: int

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "key": self.key,
                "count_source": self.count_source, "count_target": self.count_target}


@dataclass(frozen=True)
class NotCompared:
    """A namespace of a routed database that verify did not compare (time series, view, excluded)."""

    namespace: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "why": self.why}


@dataclass(frozen=True)
class VerifyReport:
    """Every compared (collection, half) plus the unclaimed counts; `ok` when every compared half matches."""

    source_name: str
    target_name: str
    halves: tuple[str, ...]
    results: tuple[CollectionHalfResult, ...]
    unclaimed: tuple[UnclaimedCount, ...]
    seconds: float
    not_compared: tuple[NotCompared, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> tuple[CollectionHalfResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def summary(self) -> str:
        """One line when everything matches, else one line per differing collection and half."""
        if self.ok:
            docs = sum(r.count_source for r in self.results)
            return (f"{', '.join(self.halves)} half/halves equal on {self.source_name} and {self.target_name}: "
                    f"{len(self.results)} collection halves, {docs} documents" + self.not_compared_text())
        return "\n".join(r.describe(self.source_name, self.target_name) for r in self.failures) + \
            self.not_compared_text()

    def not_compared_text(self) -> str:
        if not self.not_compared:
            return ""
        return "; not compared: " + ", ".join(f"{n.namespace} ({n.why})" for n in self.not_compared)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "source": self.source_name, "target": self.target_name, "halves": list(self.halves),
            "seconds": round(self.seconds, 3),
            "collections": [r.to_json() for r in self.results],
            "unclaimed": [u.to_json() for u in self.unclaimed],
            "not_compared": [n.to_json() for n in self.not_compared],
        }
