"""The final report of a cleanup run: per set and per collection, as text or as one JSON line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from splitter.cleanup.throttle import fmt_seconds

NORMAL_STOPS = ("done", "max-docs", "max-runtime", "window", "signal")


@dataclass
class CollectionReport:
    """One namespace on one set. `deleted`/`kept_by_interlock` are this run's; `*_total` all runs'."""

    namespace: str
    deleted: int = 0
    kept_by_interlock: int = 0
    deleted_total: int = 0
    kept_total: int = 0
    kept_sample: list[Any] = field(default_factory=list)
    bad_keys: int = 0
    remaining: int = 0
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        sample = json.loads(json_util.dumps(self.kept_sample, json_options=RELAXED_JSON_OPTIONS))
        return {**vars(self), "kept_sample": sample}


@dataclass
class SetReport:
    """One set's run: why it stopped and what it did."""

    set_name: str
    other_set: str
    dry_run: bool = False
    stop_kind: str = ""
    stop_reason: str = ""
    elapsed: float = 0.0
    waits: dict[str, float] = field(default_factory=dict)
    last_wait: str = ""
    collections: list[CollectionReport] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.collections)

    @property
    def done(self) -> bool:
        return bool(self.collections) and all(c.done for c in self.collections)

    def to_json(self) -> dict[str, Any]:
        totals = {name: self.total(name) for name in ("deleted", "kept_by_interlock", "deleted_total",
                                                      "kept_total", "bad_keys", "remaining")}
        return {"set": self.set_name, "other_set": self.other_set, "dry_run": self.dry_run,
                "stopped": self.stop_kind, "reason": self.stop_reason, "elapsed": round(self.elapsed, 3),
                "waited": {k: round(v, 3) for k, v in self.waits.items()}, "last_wait": self.last_wait,
                "done": self.done, **totals, "collections": [c.to_json() for c in self.collections]}


@dataclass
class CleanupReport:
    """All sets of one `splitter cleanup` invocation."""

    sets: list[SetReport] = field(default_factory=list)
    stop_kind: str = ""
    stop_reason: str = ""

    @property
    def normal(self) -> bool:
        kinds = [self.stop_kind] if self.stop_kind else [s.stop_kind for s in self.sets]
        return all(kind in NORMAL_STOPS for kind in kinds)

    def to_json_line(self) -> str:
        doc: dict[str, Any] = {"ok": self.normal, "sets": [s.to_json() for s in self.sets]}
        if self.stop_kind:
            doc.update(stopped=self.stop_kind, reason=self.stop_reason)
        return json.dumps(doc, sort_keys=True, default=str)

    def to_text(self) -> str:
        if not self.sets:
            return f"cleanup: {self.stop_reason}; nothing was deleted"
        lines = []
        for s in self.sets:
            verb = "would delete" if s.dry_run else "deleted"
            dry = "DRY RUN, " if s.dry_run else ""
            lines.append(f"{s.set_name}: {dry}stopped: {s.stop_reason} after {fmt_seconds(s.elapsed)}")
            lines.append(f"  {verb} {s.total('deleted')} documents of {s.other_set}'s half "
                         f"({s.total('deleted_total')} in all runs); kept by interlock {s.total('kept_by_interlock')} "
                         f"({s.total('kept_total')} in all runs); bad keys {s.total('bad_keys')}; "
                         f"remaining {s.total('remaining')}{' (walk complete)' if s.done else ''}")
            if s.waits:
                waited = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in sorted(s.waits.items()))
                lines.append(f"  waited: {waited} (last: {s.last_wait})")
            for c in s.collections:
                sample = f"; kept ids e.g. {', '.join(map(str, c.kept_sample[:5]))}" if c.kept_sample else ""
                lines.append(f"  {c.namespace:<32} {verb} {c.deleted:>8}  kept {c.kept_by_interlock:>6}  "
                             f"bad keys {c.bad_keys:>6}  remaining {c.remaining:>8}"
                             f"{'  done' if c.done else ''}{sample}")
            if s.total("kept_total"):
                lines.append(f"  note: kept documents are of {s.other_set}'s half but missing on {s.other_set}; "
                             f"check them before deleting by hand")
            if s.total("bad_keys"):
                lines.append("  note: documents with a missing or non-integer key are never deleted")
        return "\n".join(lines)
