"""The counts of one set's cleanup: what each chunk and sweep did, and the estimates before and after a run.

Touches this set only for collection metadata (`estimated_document_count`), and, with `exact`, for the two full
counts at the end (remaining documents of the other half, documents with no routable key): the only full scans a
run makes, and only when asked for (--exact-counts), because they read every document unthrottled.
"""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from splitter.cleanup.orphans import Sweep
from splitter.cleanup.report import SetReport
from splitter.routing import RoutedCollection, Routing
from splitter.store.cleanup_position import Position


class Tally:
    """Keeps the SetReport of one run up to date."""

    def __init__(self, report: SetReport, this: MongoClient, routing: Routing, other_set: str, *,
                 exact: bool = False) -> None:
        self.report = report
        self.this = this
        self.routing = routing
        self.other_set = other_set
        self.exact = exact

    @property
    def share(self) -> float:
        """The other set's share of the key space (1/2 for a two-set split by % 2)."""
        return len(self.routing.residues(self.other_set)) / self.routing.modulus

    def _left(self, c: RoutedCollection, pos: Position) -> int:
        """About how many documents of the other half are still on this set: what the walk kept when it is done
        (less the orphans removed since), else the collection's metadata count split by the share, less what
        earlier runs deleted."""
        if pos.done:
            return max(pos.kept_by_interlock - pos.orphans_removed, 0)
        now = self.this[c.database][c.collection].estimated_document_count()
        return max(round((now + pos.deleted) * self.share) - pos.deleted - pos.kept_by_interlock, 0)

    def expected(self, routed: list[RoutedCollection], positions: dict[str, Position], limit: int | None) -> int:
        """About how many documents this run will delete (for the bar and its ETA), from metadata: counting the
        half exactly would read every document once more before the first delete."""
        total = sum(self._left(c, positions[c.namespace]) for c in routed if not positions[c.namespace].done)
        return min(total, limit) if limit is not None else total

    def chunk(self, namespace: str, deleted: int, kept_by: dict[str, list[Any]]) -> int:
        """A settled chunk; returns how many it kept."""
        rep = self.report.collection(namespace)
        rep.deleted += deleted
        for reason, ids in kept_by.items():
            rep.kept_by[reason] = rep.kept_by.get(reason, 0) + len(ids)
        return sum(len(ids) for ids in kept_by.values())

    def sweep(self, namespace: str, sweep: Sweep) -> None:
        rep = self.report.collection(namespace)
        rep.deleted += sweep.deleted
        rep.orphans_removed += sweep.removed
        rep.orphans_in_flight += sweep.in_flight
        notes = [sweep.note] if sweep.note else []
        if sweep.kept_by:
            notes.append("still kept: " + ", ".join(f"{reason} {n}" for reason, n in sorted(sweep.kept_by.items())))
        rep.orphans_note = "; ".join(notes)

    def finish(self, c: RoutedCollection, pos: Position) -> None:
        """The collection's totals from its position, and what is left (estimated, or counted with `exact`)."""
        rep = self.report.collection(c.namespace)
        coll = self.this[c.database][c.collection]
        if self.exact:
            rep.remaining = coll.count_documents(self.routing.half_filter(c.key, self.other_set))
            rep.bad_keys = coll.count_documents(self.routing.unclaimed_filter(c.key))
        else:
            rep.remaining = self._left(c, pos)
        rep.remaining_exact = self.exact
        rep.deleted_total, rep.kept_total_by = pos.deleted, dict(pos.kept)
        rep.kept_sample = {reason: list(ids) for reason, ids in pos.kept_samples.items()}
        rep.done = pos.done
