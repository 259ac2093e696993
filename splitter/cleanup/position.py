"""Where the cleanup of one namespace on one set stands: one JSON file each, replaced atomically.

Files live in <state_dir>/cleanup/<set>/<db.coll>.json. `_id` values are stored as canonical Extended JSON so
an ObjectId, a long or a string comes back exactly as it was.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

from splitter.engine.state import atomic_write_json, ensure_state_dir, now_iso

POSITION_FORMAT = 1
KEPT_SAMPLE = 20


def encode_id(value: Any) -> Any:
    return json.loads(json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS))


def decode_id(value: Any) -> Any:
    return json_util.loads(json.dumps(value), json_options=CANONICAL_JSON_OPTIONS)


@dataclass
class InFlight:
    """A batch whose delete was sent but not yet recorded: its candidate ids and how many the interlock allowed."""

    ids: list[Any]
    allowed: int


@dataclass
class Position:
    """Progress of one namespace on one set. `last_id` is only meaningful when `started`."""

    set_name: str
    namespace: str
    started: bool = False
    last_id: Any = None
    done: bool = False
    deleted: int = 0
    kept_by_interlock: int = 0
    kept_sample: list[Any] = field(default_factory=list)
    batches: int = 0
    in_flight: InFlight | None = None
    updated: str = ""

    def note_kept(self, ids: list[Any]) -> None:
        self.kept_by_interlock += len(ids)
        room = KEPT_SAMPLE - len(self.kept_sample)
        if room > 0:
            self.kept_sample.extend(ids[:room])

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["format"] = POSITION_FORMAT
        doc["last_id"] = encode_id(self.last_id)
        doc["kept_sample"] = [encode_id(i) for i in self.kept_sample]
        if self.in_flight is not None:
            doc["in_flight"] = {"ids": [encode_id(i) for i in self.in_flight.ids], "allowed": self.in_flight.allowed}
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Position:
        flight = doc.get("in_flight")
        return cls(
            set_name=doc["set_name"], namespace=doc["namespace"], started=bool(doc.get("started")),
            last_id=decode_id(doc.get("last_id")), done=bool(doc.get("done")), deleted=int(doc.get("deleted", 0)),
            kept_by_interlock=int(doc.get("kept_by_interlock", 0)),
            kept_sample=[decode_id(i) for i in doc.get("kept_sample", [])], batches=int(doc.get("batches", 0)),
            in_flight=InFlight([decode_id(i) for i in flight["ids"]], int(flight["allowed"])) if flight else None,
            updated=str(doc.get("updated", "")),
        )


class PositionStore:
    """Reads and writes the position files of one set under a state dir (`persist=False`: never writes)."""

    def __init__(self, state_dir: Path, set_name: str, *, persist: bool = True) -> None:
        self.dir = Path(state_dir) / "cleanup" / set_name
        self.set_name = set_name
        self.persist = persist
        self._ready = False

    def path(self, namespace: str) -> Path:
        return self.dir / f"{quote(namespace, safe='.-_')}.json"

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
                ensure_state_dir(directory)
            self._ready = True
        atomic_write_json(self.path(position.namespace), position.to_json())

    def all(self) -> list[Position]:
        if not self.dir.is_dir():
            return []
        return [Position.from_json(json.loads(p.read_text())) for p in sorted(self.dir.glob("*.json"))]
