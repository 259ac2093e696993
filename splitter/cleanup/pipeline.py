"""The chunks of one walk whose deletes were sent but are not yet known durable, oldest first.

Touches nothing but its own list and the futures of the majority batches it holds. The worker records the union
of these chunks' `_id`s as in flight before each send, and moves the position past a chunk only once it and every
older chunk are durable, so a crash anywhere is recovered by counting which of those `_id`s are gone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection

from splitter.cleanup.batches import ChunkScanner, Examined, Sent
from splitter.store.cleanup_position import FlightChunk, InFlight, Position


@dataclass(frozen=True)
class Flight:
    """One chunk: what was examined, its deletes (None when the interlock allowed nothing) and its record."""

    examined: Examined
    sent: Sent | None
    record: FlightChunk

    def deleted(self) -> int:
        """Waits until the chunk is durable; raises the error of its majority batch."""
        return self.sent.deleted() if self.sent is not None else 0


class Pipeline:
    """Holds up to `depth` sent chunks while the next ones are deleted (0: each is settled right after its send)."""

    def __init__(self, depth: int) -> None:
        if depth < 0:
            raise ValueError("depth must be at least 0")
        self.depth = depth
        self._flights: deque[Flight] = deque()

    def __len__(self) -> int:
        return len(self._flights)

    @property
    def allowed(self) -> int:
        """Documents sent for deletion and not yet settled (an upper bound of what they deleted)."""
        return sum(len(f.examined.allowed) for f in self._flights)

    def in_flight(self, adding: FlightChunk | None = None) -> InFlight | None:
        """The record of every unsettled chunk, and of `adding` (about to be sent); None when there is none."""
        chunks = [f.record for f in self._flights] + ([adding] if adding is not None else [])
        return InFlight(chunks) if chunks else None

    def push(self, flight: Flight) -> None:
        self._flights.append(flight)

    def due(self) -> Iterator[Flight]:
        """The oldest chunks beyond `depth`, each removed as it is handed out: the caller settles it."""
        while len(self._flights) > self.depth:
            yield self._flights.popleft()

    def drain(self) -> Iterator[Flight]:
        """Every chunk, oldest first, each removed as it is handed out."""
        while self._flights:
            yield self._flights.popleft()

    def abandon(self) -> None:
        """Forgets every chunk once none of its deletes still runs (their errors are the caller's recovery's)."""
        wait([f.sent.majority for f in self._flights if f.sent is not None])
        self._flights.clear()


@dataclass
class Walk:
    """One collection's walk on this set: its saved position (`pos`, past the settled chunks) and how far it has
    examined (`started`, `last_id`: ahead of `pos` while chunks are in flight)."""

    coll: Collection
    half: dict[str, Any]
    pos: Position
    scanner: ChunkScanner
    pipeline: Pipeline
    started: bool = field(init=False)
    last_id: Any = field(init=False)
    recovering: bool = False

    def __post_init__(self) -> None:
        self.rewind()

    def rewind(self) -> None:
        """Examines again from the saved position."""
        self.started, self.last_id = self.pos.started, self.pos.last_id
        self.recovering = False

    @contextmanager
    def recover_on_error(self) -> Iterator[None]:
        """An error (or interrupt) here leaves chunks sent and unrecorded: waits until none of their deletes still
        runs and marks the walk for recovery."""
        try:
            yield
        except BaseException:
            self.pipeline.abandon()
            self.recovering = True
            raise
