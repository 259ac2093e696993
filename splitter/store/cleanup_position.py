"""Where the cleanup of one namespace on one set stands: one JSON file each, replaced atomically.

Files live in <state_dir>/cleanup/<set>/<db.coll>.json (named in files.py). `_id` values are stored as
canonical Extended JSON so an ObjectId, a long or a string comes back exactly as it was; the `_id`s of the chunks
in flight (thousands, saved before every chunk) as one base64 BSON array per chunk, which is exact too, a hundred
times faster to write, and encoded once per chunk however many saves record it.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import bson
from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

from splitter.store.atomic import atomic_write_json, now_iso
from splitter.store.files import StateFiles, ensure_private_dir

POSITION_FORMAT = 2
KEPT_SAMPLE = 20
# Before format 2 the interlock kept a document only when its `_id` was missing on the other set.
EARLIER_KEEP_REASON = "missing"


def encode_id(value: Any) -> Any:
    return json.loads(json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS))


def decode_id(value: Any) -> Any:
    return json_util.loads(json.dumps(value), json_options=CANONICAL_JSON_OPTIONS)


def encode_ids(values: list[Any]) -> str:
    return base64.b64encode(bson.encode({"ids": values})).decode("ascii")


def decode_ids(text: str) -> list[Any]:
    return list(bson.decode(base64.b64decode(text))["ids"])


@dataclass(frozen=True, eq=False)
class FlightChunk:
    """One chunk whose deletes were sent (or are about to be) and not yet recorded: its candidate `_id`s and how
    many of them the interlock allowed."""

    ids: list[Any]
    allowed: int

    @cached_property
    def encoded(self) -> str:
        return encode_ids(self.ids)


@dataclass
class InFlight:
    """Every chunk in flight, oldest first: a crash is recovered by counting which of their `_id`s are gone."""

    chunks: list[FlightChunk]

    @classmethod
    def of(cls, ids: list[Any], allowed: int) -> InFlight:
        return cls([FlightChunk(ids, allowed)])

    @property
    def ids(self) -> list[Any]:
        return [i for chunk in self.chunks for i in chunk.ids]

    @property
    def allowed(self) -> int:
        return sum(chunk.allowed for chunk in self.chunks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InFlight) and (self.ids, self.allowed) == (other.ids, other.allowed)

    def to_json(self) -> dict[str, Any]:
        return {"chunks": [{"ids_bson": c.encoded, "allowed": c.allowed} for c in self.chunks]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> InFlight:
        # Earlier files hold one chunk: its `_id`s as one base64 BSON array ("ids_bson") or, before the chunked
        # cleanup, as one Extended JSON value each ("ids").
        if "chunks" in doc:
            return cls([FlightChunk(decode_ids(c["ids_bson"]), int(c["allowed"])) for c in doc["chunks"]])
        ids = decode_ids(doc["ids_bson"]) if "ids_bson" in doc else [decode_id(i) for i in doc["ids"]]
        return cls.of(ids, int(doc["allowed"]))


@dataclass
class Position:
    """Progress of one namespace on one set. `last_id` is only meaningful when `started`. `kept` counts what the
    walk's interlock kept, by reason (see cleanup/batches.py), with a sample of `_id`s each; `orphans_removed`
    what `--remove-orphans` deleted since."""

    set_name: str
    namespace: str
    started: bool = False
    last_id: Any = None
    done: bool = False
    deleted: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    kept_samples: dict[str, list[Any]] = field(default_factory=dict)
    orphans_removed: int = 0
    batches: int = 0
    in_flight: InFlight | None = None
    updated: str = ""

    @property
    def kept_by_interlock(self) -> int:
        return sum(self.kept.values())

    @property
    def kept_sample(self) -> list[Any]:
        return [i for sample in self.kept_samples.values() for i in sample][:KEPT_SAMPLE]

    def note_kept(self, reason: str, ids: list[Any]) -> None:
        if not ids:
            return
        self.kept[reason] = self.kept.get(reason, 0) + len(ids)
        sample = self.kept_samples.setdefault(reason, [])
        sample.extend(ids[:max(KEPT_SAMPLE - len(sample), 0)])

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every `_id` of the chunk in flight, on every save.
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["format"] = POSITION_FORMAT
        doc["last_id"] = encode_id(self.last_id)
        doc["kept_samples"] = {reason: [encode_id(i) for i in ids] for reason, ids in self.kept_samples.items()}
        if self.in_flight is not None:
            doc["in_flight"] = self.in_flight.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Position:
        flight = doc.get("in_flight")
        kept = {str(k): int(v) for k, v in doc.get("kept", {}).items()}
        samples = {str(k): [decode_id(i) for i in v] for k, v in doc.get("kept_samples", {}).items()}
        if "kept_by_interlock" in doc:  # format 1
            kept = {EARLIER_KEEP_REASON: int(doc["kept_by_interlock"])} if doc["kept_by_interlock"] else {}
            samples = {EARLIER_KEEP_REASON: [decode_id(i) for i in doc.get("kept_sample", [])]} if kept else {}
        return cls(
            set_name=doc["set_name"], namespace=doc["namespace"], started=bool(doc.get("started")),
            last_id=decode_id(doc.get("last_id")), done=bool(doc.get("done")), deleted=int(doc.get("deleted", 0)),
            kept=kept, kept_samples=samples, orphans_removed=int(doc.get("orphans_removed", 0)),
            batches=int(doc.get("batches", 0)), in_flight=InFlight.from_json(flight) if flight else None,
            updated=str(doc.get("updated", "")),
        )


class PositionStore:
    """Reads and writes the position files of one set under a state dir (`persist=False`: never writes).

    Every save is atomic (a kill -9 never loses one); it is also fsync'd when `sync_every` seconds have passed
    since the last fsync, and always when the namespace is done. A power cut can so bring back a position at
    most that old: the rerun examines those documents again (the interlock still holds), and the deleted
    counter misses what was deleted since."""

    def __init__(self, state_dir: Path, set_name: str, *, persist: bool = True, sync_every: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.files = StateFiles(state_dir)
        self.dir = self.files.cleanup_dir(set_name)
        self.set_name = set_name
        self.persist = persist
        self.sync_every = sync_every
        self.monotonic = monotonic
        self._ready = False
        self._synced = -math.inf

    def path(self, namespace: str) -> Path:
        return self.files.cleanup_position(self.set_name, namespace)

    def load(self, namespace: str) -> Position:
        path = self.path(namespace)
        if not path.exists():
            return Position(self.set_name, namespace)
        return Position.from_json(json.loads(path.read_text()))

    def save(self, position: Position) -> None:
        if not self.persist:
            return
        position.updated = now_iso()
        if not self._ready:
            for directory in (self.dir.parent.parent, self.dir.parent, self.dir):
                ensure_private_dir(directory)
            self._ready = True
        durable = position.done or self.monotonic() - self._synced >= self.sync_every
        atomic_write_json(self.path(position.namespace), position.to_json(), durable=durable)
        if durable:
            self._synced = self.monotonic()

    def all(self) -> list[Position]:
        if not self.dir.is_dir():
            return []
        return [Position.from_json(json.loads(p.read_text())) for p in sorted(self.dir.glob("*.json"))]
