"""The final report of a cleanup run: per set and per collection, as text or as one JSON line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from splitter.cleanup.batches import KEEP_REASON_TEXT, KEEP_REASONS
from splitter.cleanup.throttle import fmt_seconds

NORMAL_STOPS = ("done", "max-docs", "max-runtime", "window", "signal")


@dataclass
class CollectionReport:
    """One namespace on one set. `deleted`/`kept_by` are this run's; `*_total` all runs' (from the position).
    `remaining` is an estimate unless `remaining_exact`; `bad_keys` is None unless counted (--exact-counts)."""

    namespace: str
    deleted: int = 0
    kept_by: dict[str, int] = field(default_factory=dict)
    deleted_total: int = 0
    kept_total_by: dict[str, int] = field(default_factory=dict)
    kept_sample: dict[str, list[Any]] = field(default_factory=dict)
    orphans_removed: int = 0
    orphans_in_flight: int = 0
    orphans_note: str = ""
    bad_keys: int | None = None
    remaining: int = 0
    remaining_exact: bool = False
    done: bool = False

    @property
    def kept_by_interlock(self) -> int:
        return sum(self.kept_by.values())

    @property
    def kept_total(self) -> int:
        return sum(self.kept_total_by.values())

    def to_json(self) -> dict[str, Any]:
        sample = json.loads(json_util.dumps(self.kept_sample, json_options=RELAXED_JSON_OPTIONS))
        return {**vars(self), "kept_sample": sample, "kept_by_interlock": self.kept_by_interlock,
                "kept_total": self.kept_total}


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
        return sum(getattr(c, name) or 0 for c in self.collections)

    def kept_by(self, total: bool = False) -> dict[str, int]:
        """Documents kept by the interlock per reason (this run, or all runs)."""
        out: dict[str, int] = {}
        for c in self.collections:
            for reason, n in (c.kept_total_by if total else c.kept_by).items():
                out[reason] = out.get(reason, 0) + n
        return out

    def collection(self, namespace: str) -> CollectionReport:
        for rep in self.collections:
            if rep.namespace == namespace:
                return rep
        rep = CollectionReport(namespace)
        self.collections.append(rep)
        return rep

    @property
    def done(self) -> bool:
        return bool(self.collections) and all(c.done for c in self.collections)

    def to_json(self) -> dict[str, Any]:
        totals = {name: self.total(name) for name in ("deleted", "kept_by_interlock", "deleted_total",
                                                      "kept_total", "remaining", "orphans_removed",
                                                      "orphans_in_flight")}
        bad = [c.bad_keys for c in self.collections]
        return {"set": self.set_name, "other_set": self.other_set, "dry_run": self.dry_run,
                "stopped": self.stop_kind, "reason": self.stop_reason, "elapsed": round(self.elapsed, 3),
                "waited": {k: round(v, 3) for k, v in self.waits.items()}, "last_wait": self.last_wait,
                "done": self.done, **totals, "kept_by": self.kept_by(), "kept_total_by": self.kept_by(total=True),
                "bad_keys": None if None in bad else sum(b or 0 for b in bad),
                "remaining_exact": all(c.remaining_exact for c in self.collections),
                "collections": [c.to_json() for c in self.collections]}


def kept_text(kept_by: dict[str, int], other_set: str) -> str:
    """'3 (missing on rs2 2, in the wrong half there 1)' or '0'."""
    total = sum(kept_by.values())
    parts = [f"{KEEP_REASON_TEXT[r].replace('the other set', other_set)} {kept_by[r]}"
             for r in KEEP_REASONS if kept_by.get(r)]
    return f"{total} ({', '.join(parts)})" if parts else str(total)


def _set_lines(s: SetReport) -> list[str]:
    verb = "would delete" if s.dry_run else "deleted"
    dry = "DRY RUN, " if s.dry_run else ""
    approx = "" if all(c.remaining_exact for c in s.collections) else "about "
    bad = [c.bad_keys for c in s.collections]
    lines = [f"{s.set_name}: {dry}stopped: {s.stop_reason} after {fmt_seconds(s.elapsed)}",
             f"  {verb} {s.total('deleted')} documents of {s.other_set}'s half ({s.total('deleted_total')} in all "
             f"runs); kept by interlock {kept_text(s.kept_by(), s.other_set)} "
             f"({s.total('kept_total')} in all runs); remaining {approx}{s.total('remaining')}"
             f"{'' if None in bad else f'; bad keys {sum(b or 0 for b in bad)}'}{' (walk complete)' if s.done else ''}"]
    if s.total("orphans_removed") or s.total("orphans_in_flight"):
        lines.append(f"  orphans: {'would remove' if s.dry_run else 'removed'} {s.total('orphans_removed')}; "
                     f"{s.total('orphans_in_flight')} kept for now (not settled on {s.other_set})")
    if s.waits:
        waited = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in sorted(s.waits.items()))
        lines.append(f"  waited: {waited} (last: {s.last_wait or '-'})")
    for c in s.collections:
        sample = "".join(f"; {KEEP_REASON_TEXT[r].replace('the other set', s.other_set)} e.g. "
                         f"{', '.join(map(str, ids[:5]))}" for r, ids in c.kept_sample.items() if ids)
        bad_keys = "" if c.bad_keys is None else f"  bad keys {c.bad_keys:>6}"
        lines.append(f"  {c.namespace:<32} {verb} {c.deleted:>8}  kept {c.kept_by_interlock:>6}{bad_keys}  "
                     f"remaining {'~' if not c.remaining_exact else ''}{c.remaining:>8}"
                     f"{'  done' if c.done else ''}{sample}")
        if c.orphans_note:
            lines.append(f"    {c.orphans_note}")
    return lines


def _notes(s: SetReport) -> list[str]:
    kept = s.kept_by(total=True)
    lines = []
    if kept.get("missing"):
        lines.append(f"  note: {kept['missing']} kept documents are of {s.other_set}'s half but missing on "
                     f"{s.other_set}, which owns them: most likely the application deleted them there. "
                     f"`splitter cleanup --set {s.set_name} --remove-orphans` removes those that stay missing "
                     f"after a second, settled read on {s.other_set}")
    if kept.get("wrong-half") or kept.get("bad-key"):
        lines.append(f"  note: documents {s.other_set} holds in another half or with a key that routes nowhere are "
                     f"never deleted (their key changed there after the cutover): check them by hand")
    if any(c.bad_keys for c in s.collections):
        lines.append("  note: documents with a missing or non-integer key are never deleted")
    return lines


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
        return "\n".join(line for s in self.sets for line in (*_set_lines(s), *_notes(s)))
