"""CatchUpWorker: replays the target set's half of everything written to rs1 after the split optime.

Touches: a change stream on the source (rs1) over the routed databases (plus reads of local.oplog.rs for the
oplog window and the lag estimate), ordered bulk writes and index commands on the target (w: majority), and
the position file `catchup-<target>.json` in the state dir, saved after every applied batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import Timestamp
from pymongo import DeleteOne, MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from splitter.catchup.apply import IndexOp, Translation, WriteOp, translate
from splitter.catchup.source import (
    events_behind,
    fmt_ts,
    history_lost_error,
    is_history_lost,
    is_transient,
    last_write_ts,
    oldest_oplog_ts,
)
from splitter.errors import OperationalError, RetryableError
from splitter.events import EventBus
from splitter.routing import Routing
from splitter.store.catchup_position import Position, PositionStore, next_timestamp, token_time

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
IGNORABLE_DROP_CODES = frozenset({26, 27})  # NamespaceNotFound, IndexNotFound: already dropped
RATE_WINDOW = 30.0


@dataclass(frozen=True)
class CatchUpStats:
    events: int
    applied: int
    deleted: int
    skipped: int
    unclaimed: int
    index_ops: int
    rate_per_second: float


class CatchUpWorker:
    """Applies `target_set`'s half of rs1's changes since `start_after` to `target`. See the module docstring."""

    def __init__(self, source: MongoClient, target: MongoClient, routing: Routing, target_set: str,
                 state_dir: Path, start_after: Timestamp, *, stream: str | None = None,
                 bypass_validation: bool = False, events: EventBus | None = None, batch_size: int = 500,
                 progress: Progress | None = None, max_await_ms: int = 500, flush_seconds: float = 1.0,
                 max_retries: int = 5, lag_every: float = 5.0, report_seconds: float = 30.0,
                 wtimeout_ms: int = 60_000) -> None:
        """`target_set` is the half that is replayed (the set owning those residues); `stream` names the position
        file (default: the half, `catchup-<half>.json`); `bypass_validation` writes through a write fence
        (a validator) on the target, which only the streams may do."""
        if target_set not in routing.sets:
            raise OperationalError(f"catch-up: {target_set!r} is not a routing set ({', '.join(routing.sets)})")
        self.source, self.target, self.routing, self.target_set = source, target, routing, target_set
        self.stream = stream or target_set
        self.bypass_validation = bypass_validation
        self.events = events
        self.batch_size, self.max_await_ms, self.flush_seconds = batch_size, max_await_ms, flush_seconds
        self.max_retries, self.lag_every, self.report_seconds = max_retries, lag_every, report_seconds
        self.progress = progress or (events.progress if events is not None else (lambda _msg: None))
        self._write_concern = WriteConcern("majority", wtimeout=wtimeout_ms)
        self._store = PositionStore(state_dir, self.stream)
        position = self._store.load()
        if position is None:
            position = Position(target_set, start_after)
        elif position.split_optime != start_after:
            raise OperationalError(
                f"catch-up: {self._store.path} belongs to a split at optime {fmt_ts(position.split_optime)}, "
                f"not {fmt_ts(start_after)}", hint="a position from another split attempt; move it away to start over")
        self._position = position
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[WriteOp]] = {}
        self._pending_counts: Counter[str] = Counter()
        self._pending_event_time: Timestamp | None = None
        self._failures = 0
        self._last_save = self._last_report = self._last_lag = self._last_target_event = time.monotonic()
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), position.counters["events"])])

    # -- public -------------------------------------------------------------------------------------
    @property
    def position(self) -> Position:
        return self._position

    def run(self, stop: threading.Event) -> CatchUpStats:
        """Apply changes continuously until `stop` is set; the position is saved before returning."""
        self._loop(stop.is_set, lambda: False)
        return self.stats()

    def drain(self, until: Timestamp | None = None, quiet_seconds: float = 2.0,
              timeout: float | None = None) -> CatchUpStats:
        """Apply until everything up to `until` (default: rs1's last write now) is applied and no event of the
        target's half was seen for `quiet_seconds`. Raises OperationalError after `timeout` seconds."""
        until = until or last_write_ts(self.source)
        started = time.monotonic()
        self._last_target_event = started

        def timed_out() -> bool:
            if timeout is not None and time.monotonic() - started > timeout:
                through = fmt_ts(self._position.applied_through)
                raise OperationalError(f"catch-up into {self.target_set}: not drained after {timeout:.0f}s "
                                       f"(applied through {through}, want {fmt_ts(until)})",
                                       hint="writes of the target's half are still arriving on rs1")
            return False

        def done() -> bool:
            return (self._position.applied_through >= until
                    and time.monotonic() - self._last_target_event >= quiet_seconds)

        self._loop(timed_out, done)
        return self.stats()

    def stats(self) -> CatchUpStats:
        with self._lock:
            c, rate = dict(self._position.counters), self._rate()
        return CatchUpStats(c["events"], c["applied"], c["deleted"], c["skipped"], c["unclaimed"], c["index_ops"],
                            rate)

    def lag(self) -> tuple[float | None, int | None]:
        """(seconds, events) between rs1's last write and what is applied; events is an oplog estimate or None."""
        try:
            latest = last_write_ts(self.source)
        except PyMongoError as exc:
            log.info("catch-up lag: cannot read rs1's last write: %s", exc)
            return None, None
        through = self._position.applied_through
        seconds = float(max(latest.time - through.time, 0)) if latest > through else 0.0
        return seconds, events_behind(self.source, self.routing.databases, through) if latest > through else 0

    # -- loop ---------------------------------------------------------------------------------------
    def _loop(self, stop_now: Callable[[], bool], done_when_idle: Callable[[], bool]) -> None:
        retrying = Retrying(retry=retry_if_exception(is_transient), stop=lambda _s: self._failures >= self.max_retries,
                            wait=wait_exponential(multiplier=0.5, min=0.5, max=10), before_sleep=self._on_retry,
                            reraise=True)
        try:
            retrying(self._session, stop_now, done_when_idle)
        except PyMongoError as exc:
            if is_history_lost(exc):
                raise self._history_lost(str(exc)) from exc
            raise self._failed(exc) from exc

    def _failed(self, exc: PyMongoError) -> OperationalError:
        if is_transient(exc):
            return RetryableError(f"catch-up into {self.target_set}: gave up after {self._failures} attempts: {exc}",
                                  hint="check that rs1 and the target have a primary; `run` resumes from the position")
        return OperationalError(f"catch-up into {self.target_set}: {exc}")

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        msg = (f"catch-up {self.target_set}: transient error ({type(exc).__name__}: {exc}); reopening from the saved "
               f"position in {wait:.1f}s ({self._failures} of {self.max_retries} failures in a row allowed)")
        log.warning(msg)
        self.progress(msg)

    def _session(self, stop_now: Callable[[], bool], done_when_idle: Callable[[], bool]) -> None:
        self._pending.clear()
        self._pending_counts.clear()
        self._pending_event_time = None
        try:
            with self._open() as stream:
                while True:
                    if stop_now():
                        self._commit(stream.resume_token)
                        return
                    before = stream.resume_token
                    change = stream.try_next()
                    if change is None:
                        self._commit(stream.resume_token, idle=True)
                        self._tick()
                        if done_when_idle():
                            self._commit(stream.resume_token)  # the final position, unthrottled
                            return
                        continue
                    self._handle(change, before)
                    pending = sum(len(ops) for ops in self._pending.values())
                    if pending >= self.batch_size or time.monotonic() - self._last_save >= self.flush_seconds:
                        self._commit(stream.resume_token)
                        self._tick()
                        # A busy source never lets the stream idle: check for "drained" after each batch too.
                        if done_when_idle():
                            return
        except PyMongoError:
            self._failures += 1
            raise

    def _open(self) -> ChangeStream:
        position = self._position
        self._check_window(position)
        kwargs: dict[str, Any] = {"full_document": "updateLookup", "show_expanded_events": True,
                                  "max_await_time_ms": self.max_await_ms, "batch_size": self.batch_size}
        if position.resume_token:
            kwargs["resume_after"] = position.resume_token
        else:
            kwargs["start_at_operation_time"] = next_timestamp(position.split_optime)
        where = "resuming" if position.resume_token else "starting"
        self.progress(f"catch-up {self.target_set}: {where} after {fmt_ts(position.applied_through)}")
        return self.source.watch([{"$match": {"ns.db": {"$in": sorted(self.routing.databases)}}}], **kwargs)

    def _handle(self, change: Mapping[str, Any], before: Mapping[str, Any] | None) -> None:
        try:
            tr = translate(change, self.routing, self.target_set)
        except OperationalError:
            self._commit(before)  # everything before the unsupported change stays applied
            raise
        if tr.note:
            log.warning(tr.note)
            self.progress(f"catch-up {self.target_set}: {tr.note}")
        if tr.index is not None:
            self._commit(before)  # writes before the index change land first
            self._apply_index(tr)
            self._last_target_event = time.monotonic()
            self._pending_counts["index_ops"] += 1
        else:
            if tr.outcome != "applied":
                self._pending_counts[tr.outcome] += 1
            self._pending_counts["applied"] += len(tr.writes)
            if tr.writes:
                self._pending.setdefault(tr.namespace, []).extend(tr.writes)
            if any(not isinstance(op, DeleteOne) for op in tr.writes):
                self._last_target_event = time.monotonic()
        self._pending_counts["events"] += 1
        self._pending_event_time = change.get("clusterTime") or self._pending_event_time

    # -- applying -----------------------------------------------------------------------------------
    def _commit(self, token: Mapping[str, Any] | None, idle: bool = False) -> None:
        """Apply pending writes, then save the position (never ahead of what is applied)."""
        deleted = 0
        for (db, coll), ops in self._pending.items():
            collection = self.target[db].get_collection(coll, write_concern=self._write_concern)
            result = collection.bulk_write(ops, ordered=True, bypass_document_validation=self.bypass_validation)
            deleted += result.deleted_count
        self._pending.clear()
        if deleted:
            self._last_target_event = time.monotonic()
        token = dict(token) if token else self._position.resume_token
        moved = token != self._position.resume_token
        if not self._pending_counts and (not moved or (idle and time.monotonic() - self._last_save < 1.0)):
            return
        with self._lock:
            position = self._position
            for name, count in self._pending_counts.items():
                position.counters[name] = position.counters.get(name, 0) + count
            position.counters["deleted"] += deleted
            position.resume_token = token
            position.last_event_time = self._pending_event_time or position.last_event_time
            position.resume_time = token_time(token) or position.last_event_time
            position.rate_per_second = self._rate(sample=True)
        self._store.save(position)
        self._pending_counts.clear()
        self._pending_event_time = None
        self._failures = 0
        self._last_save = time.monotonic()

    def _apply_index(self, tr: Translation) -> None:
        op: IndexOp = tr.index  # type: ignore[assignment]
        db = self.target[tr.database]
        wc = {"w": "majority", "wtimeout": self._write_concern.document.get("wtimeout", 0)}
        if op.action == "create":
            db.command({"createIndexes": tr.collection, "indexes": op.create_specs(), "writeConcern": wc})
        else:
            for name in op.names:
                try:
                    db.command({"dropIndexes": tr.collection, "index": name, "writeConcern": wc})
                except OperationFailure as exc:
                    if exc.code not in IGNORABLE_DROP_CODES:
                        raise
        self.progress(f"catch-up {self.target_set}: {op.action} index {', '.join(op.names)} on "
                      f"{tr.database}.{tr.collection}")

    # -- oplog window, rate, reporting ---------------------------------------------------------------
    def _check_window(self, position: Position) -> None:
        oldest = oldest_oplog_ts(self.source)
        if oldest is not None and oldest > position.applied_through:
            raise self._history_lost(f"the oldest entry in rs1's oplog is {fmt_ts(oldest)}")

    def _history_lost(self, detail: str) -> OperationalError:
        p = self._position
        return history_lost_error(self.target_set, p.split_optime, p.applied_through if p.resume_token else None,
                                  detail)

    def _rate(self, sample: bool = False) -> float:
        now, events = time.monotonic(), self._position.counters["events"]
        if sample:
            self._samples.append((now, events))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        t0, e0 = self._samples[0]
        return round((events - e0) / (now - t0), 1) if now - t0 > 0.5 else 0.0

    def _tick(self) -> None:
        """Every `lag_every` s: measure the lag and save it for `status`; every `report_seconds`: report."""
        now = time.monotonic()
        if now - self._last_lag < self.lag_every:
            return
        self._last_lag = now
        seconds, events = self.lag()
        with self._lock:
            self._position.lag_seconds, self._position.lag_events = seconds, events
            self._position.rate_per_second = self._rate()
        self._store.save(self._position)  # holds only applied state, so saving it here is safe
        if now - self._last_report >= self.report_seconds:
            self._last_report = now
            s = self.stats()
            self.progress(f"catch-up {self.target_set}: {s.events} events, {s.applied} writes ({s.deleted} deleted),"
                          f" {s.skipped} skipped, {s.unclaimed} unclaimed; lag {seconds}s / {events} events; "
                          f"{s.rate_per_second}/s")


