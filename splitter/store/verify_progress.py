"""Where a `splitter verify` got to: its `_id` ranges and the (count, hash) of every range already read on both
sides, so a verify that was killed resumes without reading those ranges again.

One file per kind of comparison (`verify/<run_id>.json`, run_id from the halves and the range size): a verify
with other halves or another `--range-docs` starts its own. The file is removed when a verify finishes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import json_util

from splitter.store.atomic import atomic_write_json, now_iso, read_json
from splitter.store.files import StateFiles, ensure_private_dir

FORMAT = 1
SAVE_EVERY = 1.0  # seconds: a kill loses at most this much reading
RangeKey = tuple[str, str, int]  # namespace, half, range index
SideTotals = tuple[int, int]  # count, hash
_JSON = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL)


def run_id(halves: Iterable[str], range_docs: int) -> str:
    text = f"{','.join(sorted(halves))}|{range_docs}"
    return "halves-" + hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def _key_text(key: RangeKey) -> str:
    return f"{key[0]}|{key[1]}|{key[2]}"


def _key(text: str) -> RangeKey:
    namespace, half, index = text.rsplit("|", 2)
    return namespace, half, int(index)


@dataclass
class VerifyProgress:
    """The ranges planned per namespace (kept as they were: re-planning would move the boundaries) and the
    totals of each finished range. `persist=False` (tests, dry runs): never writes."""

    path: Path | None
    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: dict[RangeKey, tuple[SideTotals, SideTotals]] = field(default_factory=dict)
    started: str = field(default_factory=now_iso)
    monotonic: Callable[[], float] = time.monotonic
    _saved_at: float = 0.0

    @classmethod
    def open(cls, files: StateFiles, halves: Iterable[str], range_docs: int, *, restart: bool = False
             ) -> VerifyProgress:
        path = files.verify_progress(run_id(halves, range_docs))
        doc = None if restart else read_json(path)
        if not doc or doc.get("format") != FORMAT:
            return cls(path)
        plans = {ns: json_util.loads(text) for ns, text in doc.get("plans", {}).items()}
        done = {_key(k): (tuple(v[0]), tuple(v[1])) for k, v in doc.get("done", {}).items()}
        return cls(path, plans, done, doc.get("started", now_iso()))  # type: ignore[arg-type]

    @property
    def resumed(self) -> bool:
        return bool(self.done)

    def plan(self, namespace: str, make: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if namespace not in self.plans:
            self.plans[namespace] = make()
        return self.plans[namespace]

    def record(self, key: RangeKey, source: SideTotals, target: SideTotals) -> None:
        self.done[key] = (source, target)
        if self.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        if self.path is None:
            return
        ensure_private_dir(self.path.parent)
        atomic_write_json(self.path, {
            "format": FORMAT, "started": self.started, "updated": now_iso(),
            "plans": {ns: json_util.dumps(conditions, json_options=_JSON) for ns, conditions in self.plans.items()},
            "done": {_key_text(k): [list(s), list(t)] for k, (s, t) in self.done.items()},
        }, durable=False)
        self._saved_at = self.monotonic()

    def finish(self) -> None:
        """The comparison is complete: the next verify starts from scratch."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
