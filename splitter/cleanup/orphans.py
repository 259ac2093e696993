"""`cleanup --remove-orphans`: deletes the documents the interlock keeps because the owner deleted them.

After `finalize` the owner of a half is authoritative: the application writes that half only there, and the
streams that carried it between the sets have stopped. A document of the owner's half that is still on this set
but missing on the owner was deleted there by the application: an orphan. It is kept by the interlock forever
(its `_id` never appears on the owner again), so this pass removes it, but only after making sure it is not
merely late: the owner must lack it in a majority read, then its majority commit point must pass the last write
the owner had made at that read (so no write of it was still on its way to a majority), and then a second,
later majority read must still lack it. Documents held by the owner in another half or with a key that routes
nowhere are never deleted here.

Touches: this set (finds `_id`s, deletes with w:"majority", filtered by the owner's half) and the owner (majority
reads of `_id`s, `hello` for its last write and majority commit point).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bson import Timestamp
from pymongo import MongoClient

from splitter.cleanup.batches import ChunkDeleter, ChunkScanner

# A second read this long after the first at least, and at most this long waiting for the owner's majority.
SECOND_READ_AFTER = 1.0
SETTLE_TIMEOUT = 30.0
POLL = 0.2

Verdict = Literal["settled", "wait", "in-flight"]


@dataclass(frozen=True)
class OwnerWrites:
    """The owner's `hello`: its last write and its majority commit point."""

    last_write: Timestamp
    majority: Timestamp


def settle_verdict(first_last_write: Timestamp, now: OwnerWrites, waited: float, *, owner: str,
                   after: float = SECOND_READ_AFTER, timeout: float = SETTLE_TIMEOUT) -> tuple[Verdict, str]:
    """Whether the second read may be taken: once the owner's majority commit point has passed its last write at
    the first read, and `after` seconds have gone by; 'in-flight' when that has not happened within `timeout`."""
    if now.majority >= first_last_write and waited >= after:
        return "settled", (f"{owner}'s majority commit point {now.majority.time}:{now.majority.inc} passed its last "
                           f"write at the first read ({first_last_write.time}:{first_last_write.inc})")
    if waited >= timeout:
        return "in-flight", (f"{owner}'s majority commit point ({now.majority.time}:{now.majority.inc}) did not reach "
                             f"its last write at the first read ({first_last_write.time}:{first_last_write.inc}) "
                             f"within {timeout:g}s: a write of these documents may still be on its way there")
    return "wait", ""


def owner_writes(owner: MongoClient) -> OwnerWrites:
    last = owner.admin.command("hello").get("lastWrite") or {}
    return OwnerWrites(last["opTime"]["ts"], last["majorityOpTime"]["ts"])


@dataclass
class Sweep:
    """What one pass over a collection found and did."""

    examined: int = 0
    deleted: int = 0       # held by the owner in its half after all: deleted by the interlock's rule
    removed: int = 0       # orphans removed (or, in a dry run, that would be)
    in_flight: int = 0     # missing on the owner, but its majority did not settle: kept this time
    kept_by: dict[str, int] = field(default_factory=dict)  # held by the owner in another half / with a bad key
    note: str = ""


class OrphanSweeper:
    """Sweeps chunks of this set's documents of the owner's half (those the walk left): deletes what the owner now
    holds in its half, removes the orphans, keeps the rest (with the reason)."""

    def __init__(self, scanner: ChunkScanner, deleter: ChunkDeleter, owner: MongoClient, owner_name: str, *,
                 dry_run: bool, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, after: float = SECOND_READ_AFTER,
                 timeout: float = SETTLE_TIMEOUT) -> None:
        self.scanner = scanner
        self.deleter = deleter
        self.owner = owner
        self.owner_name = owner_name
        self.dry_run = dry_run
        self.sleep = sleep
        self.monotonic = monotonic
        self.after = after
        self.timeout = timeout

    def sweep_chunk(self, ids: list[Any], sweep: Sweep) -> None:
        first = self.scanner.interlock(ids)
        sweep.examined += len(ids)
        self._delete(first.allowed, sweep, orphans=False)
        self._keep(first.kept_by, sweep, but="missing")
        missing = first.kept_by.get("missing", [])
        if not missing:
            return
        first_last_write = owner_writes(self.owner).last_write
        began = self.monotonic()
        while True:
            verdict, sentence = settle_verdict(first_last_write, owner_writes(self.owner),
                                               self.monotonic() - began, owner=self.owner_name, after=self.after,
                                               timeout=self.timeout)
            if verdict == "in-flight":
                sweep.in_flight += len(missing)
                sweep.note = sentence
                return
            if verdict == "settled":
                break
            self.sleep(POLL)
        second = self.scanner.interlock(missing)
        self._delete(second.allowed, sweep, orphans=False)
        self._keep(second.kept_by, sweep, but="missing")
        self._delete(second.kept_by.get("missing", []), sweep, orphans=True)

    def _delete(self, ids: list[Any], sweep: Sweep, *, orphans: bool) -> None:
        if not ids or (self.dry_run and not orphans):  # a dry run's walk already counted these as "would delete"
            return
        count = len(ids) if self.dry_run else self.deleter.delete(self.scanner.this, self.scanner.half, ids)
        if orphans:
            sweep.removed += count
        else:
            sweep.deleted += count

    @staticmethod
    def _keep(kept_by: dict[str, list[Any]], sweep: Sweep, *, but: str) -> None:
        for reason, ids in kept_by.items():
            if reason != but:
                sweep.kept_by[reason] = sweep.kept_by.get(reason, 0) + len(ids)
