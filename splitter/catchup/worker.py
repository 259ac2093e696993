"""CatchUpWorker: replays the target set's half of everything written to rs1 after the split optime.

Touches: a change stream on the source over the routed databases, raw BSON, read ahead in a thread of its own
(`prefetch.py`), with the target's half filtered in its own `$match` where the event allows it (plus reads of
local.oplog.rs for the oplog window, the lag and the source's rate, and reads by `_id` for key moves); on the
target, batches applied by `threads` appliers partitioned by `_id` (`w: 1`), then a `w: majority` barrier
(`applier.py`), index and namespace changes (`ddl.py`); and the position file `catchup-<stream>.json` in the state
dir, saved after each barrier, so the saved position is never ahead of the target's majority commit point.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import Timestamp
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream, ClusterChangeStream
from pymongo.errors import PyMongoError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from splitter.catchup.applier import Applier, BatchResult, partition_hash
from splitter.catchup.apply import Translation, UnsupportedChange, source_filter, translate
from splitter.catchup.ddl import apply_ddl, apply_index
from splitter.catchup.prefetch import Prefetcher, resume_token_of
from splitter.catchup.rates import Rates
from splitter.catchup.rawdoc import RAW, top_level
from splitter.catchup.source import (
    fmt_ts,
    history_lost_error,
    is_history_lost,
    is_transient,
    last_write_ts,
    oldest_oplog_ts,
)
from splitter.errors import OperationalError, RetryableError
from splitter.events import EventBus, EventType
from splitter.routing import Routing
from splitter.store.catchup_position import Position, PositionStore, next_timestamp, token_time

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
UNUSED_EVENT_FIELDS = {"lsid": 0, "txnNumber": 0, "wallTime": 0, "collectionUUID": 0}


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
    """Applies `target_set`'s half of the source's changes since `start_after` to `target`. See the module doc."""

    def __init__(self, source: MongoClient, target: MongoClient, routing: Routing, target_set: str,
                 state_dir: Path, start_after: Timestamp, *, stream: str | None = None,
                 bypass_validation: bool = False, events: EventBus | None = None, batch_size: int = 2000,
                 progress: Progress | None = None, max_await_ms: int = 500, flush_seconds: float = 0.5,
                 max_retries: int = 5, lag_every: float = 5.0, report_seconds: float = 30.0,
                 wtimeout_ms: int = 60_000, threads: int = 4, before_switch: bool = True) -> None:
        """`target_set` is the half that is replayed (the set owning those residues); `stream` names the position
        file (default: the half, `catchup-<half>.json`); `bypass_validation` writes through a write fence
        (a validator) on the target, which only the streams may do; `before_switch`: the target serves nothing
        of its own yet, so stale other-half copies on it may be deleted (deletes are not limited to its half)."""
        if target_set not in routing.sets:
            raise OperationalError(f"catch-up: {target_set!r} is not a routing set ({', '.join(routing.sets)})")
        self.source, self.target, self.routing, self.target_set = source, target, routing, target_set
        self.stream = stream or target_set
        self.bypass_validation, self.before_switch = bypass_validation, before_switch
        self.events = events
        self.batch_size, self.max_await_ms, self.flush_seconds = batch_size, max_await_ms, flush_seconds
        self.max_retries, self.lag_every, self.report_seconds = max_retries, lag_every, report_seconds
        self.wtimeout_ms = wtimeout_ms
        self.progress = progress or (events.progress if events is not None else (lambda _msg: None))
        self._applier = Applier(source, target, routing, target_set, threads=threads,
                                bypass_validation=bypass_validation, before_switch=before_switch,
                                wtimeout_ms=wtimeout_ms)
        self._routed_of = functools.lru_cache(maxsize=4096)(routing.routed)
        self._inserts_filtered = isinstance(source, MongoClient)  # `_open` puts source_filter in the stream
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
        self._pending: list[tuple[int, Translation]] = []
        self._pending_counts: Counter[str] = Counter()
        self._pending_event_time: Timestamp | None = None
        self._inflight: Future[BatchResult] | None = None
        self.timing: Counter[str] = Counter()  # seconds by activity: where the time goes (bench, catchup events)
        self._dispatch = ThreadPoolExecutor(1, thread_name_prefix=f"catch-up-{target_set}-batches")
        self._failures = 0
        self._last_save = self._last_report = self._last_target_event = time.monotonic()
        self._rates = Rates(source, routing.databases, position.counters["events"])

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
        """Apply until everything up to `until` (default: the source's last write now) is applied and no event of
        the target's half was seen for `quiet_seconds`. Raises OperationalError after `timeout` seconds."""
        until = until or last_write_ts(self.source)
        started = time.monotonic()
        self._last_target_event = started

        def timed_out() -> bool:
            if timeout is not None and time.monotonic() - started > timeout:
                through = fmt_ts(self._position.applied_through)
                raise OperationalError(f"catch-up into {self.target_set}: not drained after {timeout:.0f}s "
                                       f"(applied through {through}, want {fmt_ts(until)})",
                                       hint="writes of the target's half are still arriving on the source")
            return False

        def done() -> bool:
            return (self._position.applied_through >= until
                    and time.monotonic() - self._last_target_event >= quiet_seconds)

        self._loop(timed_out, done)
        return self.stats()

    def stats(self) -> CatchUpStats:
        with self._lock:
            c, rate = dict(self._position.counters), self._rates.apply_rate(self._position.counters["events"])
        return CatchUpStats(c["events"], c["applied"], c["deleted"], c["skipped"], c["unclaimed"], c["index_ops"],
                            rate)

    def lag(self) -> tuple[float | None, int | None]:
        """(seconds, events) between the source's last write and what is applied; events is an oplog estimate."""
        return self._rates.lag(self._position.applied_through)

    # -- loop ---------------------------------------------------------------------------------------
    def _loop(self, stop_now: Callable[[], bool], done_when_idle: Callable[[], bool]) -> None:
        retrying = Retrying(retry=retry_if_exception(is_transient), stop=lambda _s: self._failures >= self.max_retries,
                            wait=wait_exponential(multiplier=0.5, min=0.5, max=10), before_sleep=self._on_retry,
                            reraise=True)
        done = threading.Event()
        reporter = threading.Thread(target=self._report, args=(done,), name=f"catch-up-{self.stream}-lag", daemon=True)
        reporter.start()
        try:
            retrying(self._session, stop_now, done_when_idle)
        except PyMongoError as exc:
            if is_history_lost(exc):
                raise self._history_lost(str(exc)) from exc
            raise self._failed(exc) from exc
        finally:
            done.set()
            reporter.join(30)

    def _failed(self, exc: PyMongoError) -> OperationalError:
        if is_transient(exc):
            return RetryableError(f"catch-up into {self.target_set}: gave up after {self._failures} attempts: {exc}",
                                  hint="check that the source and the target have a primary; `run` resumes from "
                                       "the position")
        return OperationalError(f"catch-up into {self.target_set}: {exc}")

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        msg = (f"catch-up {self.target_set}: transient error ({type(exc).__name__}: {exc}); reopening from the saved "
               f"position in {wait:.1f}s ({self._failures} of {self.max_retries} failures in a row allowed)")
        log.warning(msg)
        self.progress(msg)

    def _session(self, stop_now: Callable[[], bool], done_when_idle: Callable[[], bool]) -> None:
        self._abandon()
        self._pending.clear()
        self._pending_counts.clear()
        self._pending_event_time = None
        try:
            with self._open() as stream:
                reader = Prefetcher(stream, resume_token_of, chunk=min(self.batch_size, 500),
                                    name=f"catch-up-{self.stream}-reader").start()
                try:
                    self._follow(reader, stop_now, done_when_idle)
                finally:
                    reader.stop()
        except PyMongoError:
            self._failures += 1
            raise
        finally:
            self._abandon()

    def _follow(self, reader: Prefetcher, stop_now: Callable[[], bool], done_when_idle: Callable[[], bool]) -> None:
        while True:
            if stop_now():
                self._commit(reader.token)
                return
            started = time.monotonic()
            change, before, after = reader.next()
            read = time.monotonic()
            self.timing["read"] += read - started
            if change is None:
                self._commit(after, idle=True)
                if done_when_idle():
                    self._commit(after)  # the final position, unthrottled
                    return
                continue
            self._handle(change, before)
            self.timing["translate"] += time.monotonic() - read
            if len(self._pending) >= self.batch_size or time.monotonic() - self._last_save >= self.flush_seconds:
                self._commit(after, wait=False)
                # A busy source never lets the stream idle: check for "drained" after each batch too.
                if done_when_idle():
                    return

    def _open(self) -> ChangeStream:
        position = self._position
        self._check_window(position)
        kwargs: dict[str, Any] = {"show_expanded_events": True, "max_await_time_ms": self.max_await_ms,
                                  "batch_size": self.batch_size}
        if position.resume_token:
            kwargs["resume_after"] = position.resume_token
        else:
            kwargs["start_at_operation_time"] = next_timestamp(position.split_optime)
        where = "resuming" if position.resume_token else "starting"
        self.progress(f"catch-up {self.target_set}: {where} after {fmt_ts(position.applied_through)}")
        # Fields the catch-up never reads are not sent (decoding them was a good part of its time per event).
        pipeline = [{"$match": source_filter(self.routing, self.target_set)}, {"$project": UNUSED_EVENT_FIELDS}]
        if not isinstance(self.source, MongoClient):  # a test double
            return self.source.watch(pipeline, **kwargs)
        # Raw BSON end to end: documents are neither decoded nor re-encoded (issue 14 item 8).
        stream: ClusterChangeStream = ClusterChangeStream(
            self.source.get_database("admin", codec_options=RAW), pipeline, None, kwargs.get("resume_after"),
            self.max_await_ms, self.batch_size, None, kwargs.get("start_at_operation_time"), None, None,
            show_expanded_events=True)
        stream._initialize_cursor()
        return stream

    def _handle(self, change: Mapping[str, Any], before: Mapping[str, Any] | None) -> None:
        change = top_level(change)  # decoded once here; translate and partition_hash then read the same fields
        try:
            tr = translate(change, self.routing, self.target_set, self.before_switch, routed_of=self._routed_of,
                           inserts_filtered=self._inserts_filtered)
        except UnsupportedChange as exc:
            self._commit(before)  # everything before the unsupported change stays applied
            token = dict(change["_id"])
            if token.get("_data") not in self._position.skip_tokens:
                exc.message += f" (event token {token.get('_data')})"
                raise
            tr = Translation("", "", "skipped", note=f"skipped the event {token.get('_data')} as recorded "
                                                     f"(--skip-event): {exc.message}")
            self._pending_counts["skipped_by_operator"] += 1
        if tr.note:
            log.warning(tr.note)
            self.progress(f"catch-up {self.target_set}: {tr.note}")
        if tr.index is not None or tr.ddl is not None:
            self._commit(before)  # writes before the change land first
            done = (apply_index if tr.index is not None else apply_ddl)(self.target, tr, self.wtimeout_ms)
            self.progress(f"catch-up {self.target_set}: {done}")
            self._last_target_event = time.monotonic()
            self._pending_counts["index_ops" if tr.index is not None else "ddl_ops"] += 1
            self._pending_counts["events"] += 1
            self._pending_event_time = change.get("clusterTime")
            self._commit(change["_id"])  # neither is idempotent against a later state: never replay it
            return
        if tr.outcome != "applied":
            self._pending_counts[tr.outcome] += 1
        if tr.writes or tr.lookup is not None:
            self._pending.append((partition_hash(change), tr))
            self._pending_counts["applied"] += max(len(tr.writes), 1)
        self._pending_counts["events"] += 1
        self._pending_event_time = change.get("clusterTime") or self._pending_event_time

    # -- applying -----------------------------------------------------------------------------------
    def _commit(self, token: Mapping[str, Any] | None, idle: bool = False, wait: bool = True) -> None:
        """Hand the pending writes to the appliers (w: 1 in parallel, then the majority barrier) and save the
        position of each batch that has landed, in stream order. With `wait=False` the stream is read on while
        this batch is applied (at most one batch in flight)."""
        self._land()
        batch, self._pending = self._pending, []
        counts, self._pending_counts = self._pending_counts, Counter()
        event_time, self._pending_event_time = self._pending_event_time, None
        token = dict(token) if token else None
        if batch:
            self._inflight = self._dispatch.submit(self._apply_and_save, batch, token, counts, event_time)
            if wait:
                self._land()
            return
        self._save(token, counts, None, event_time, idle)

    def _apply_and_save(self, batch: list[tuple[int, Translation]], token: dict[str, Any] | None,
                        counts: Counter[str], event_time: Timestamp | None) -> BatchResult:
        """In the batch thread: apply, then save the position (a write + fsync the stream's thread skips)."""
        result = self._applier.apply(batch)
        self._save(token, counts, result, event_time, idle=False)
        return result

    def _land(self) -> None:
        """Wait for the batch in flight (raising its error); its position is saved once it has landed."""
        inflight, self._inflight, started = self._inflight, None, time.monotonic()
        if inflight is None:
            return
        result = inflight.result()
        self.timing["wait_for_appliers"] += time.monotonic() - started
        self.timing.update(result.timing)
        if result.counts["target_writes"]:
            self._last_target_event = time.monotonic()
        for note in result.notes:
            log.warning(note)
            self.progress(f"catch-up {self.target_set}: {note}")

    def _abandon(self) -> None:
        """After a failure: let the batch in flight finish (its writes must not overlap the re-applied ones) and
        keep its position if it landed."""
        try:
            self._land()
        except Exception as exc:  # re-applied from the saved position anyway
            log.info("catch-up %s: the batch in flight did not land: %s", self.target_set, exc)

    def _save(self, token: dict[str, Any] | None, counts: Counter[str], result: BatchResult | None,
              event_time: Timestamp | None, idle: bool) -> None:
        token = token or self._position.resume_token
        moved = token != self._position.resume_token
        recent = idle and time.monotonic() - self._last_save < 1.0
        if result is None and not counts and (not moved or recent):
            return
        with self._lock:
            position = self._position
            for name, count in [*counts.items(), *(result.counts.items() if result else ())]:
                position.counters[name] = position.counters.get(name, 0) + count
            position.resume_token = token
            position.last_event_time = event_time or position.last_event_time
            position.resume_time = token_time(token) or position.last_event_time
            position.rate_per_second = self._rates.apply_rate(position.counters["events"], sample=True)
            started = time.monotonic()
            self._store.save(position)
            self.timing["save"] += time.monotonic() - started
        self._failures = 0
        self._last_save = time.monotonic()

    # -- oplog window, reporting ---------------------------------------------------------------------
    def _check_window(self, position: Position) -> None:
        oldest = oldest_oplog_ts(self.source)
        if oldest is not None and oldest > position.applied_through:
            raise self._history_lost(f"the oldest entry in the source's oplog is {fmt_ts(oldest)}")

    def _history_lost(self, detail: str) -> OperationalError:
        p = self._position
        return history_lost_error(self.target_set, p.split_optime, p.applied_through if p.resume_token else None,
                                  detail)

    def _report(self, done: threading.Event) -> None:
        """The reporter thread: measurements read the source (up to seconds under load), so they never hold up
        the apply loop."""
        while not done.wait(self.lag_every):
            try:
                self._tick()
            except Exception as exc:  # a missed sample; the next one counts
                log.info("catch-up %s: measuring the lag failed: %s", self.target_set, exc)

    def _tick(self) -> None:
        """Measure lag and rates, save them for `status`, emit a `catchup` event; every `report_seconds` a line."""
        fields = self._rates.measure(self._position)  # outside the lock: reads the source
        with self._lock:
            self._position.lag_seconds, self._position.lag_events = fields["lag_seconds"], fields["lag_events"]
            self._position.rate_per_second = fields["rate_per_second"]
            self._position.source_rate_per_second = fields["source_rate_per_second"]
            self._position.drain_estimate_seconds = fields["drain_estimate_seconds"]
            self._store.save(self._position)  # holds only applied state, so saving it here is safe
            counters = dict(self._position.counters)
        if self.events is not None:
            self.events.emit(EventType.CATCHUP, f"catch-up {self.stream}", stream=self.stream, counters=counters,
                             timing={k: round(v, 2) for k, v in self.timing.items()}, **fields)
        now = time.monotonic()
        if now - self._last_report >= self.report_seconds:
            self._last_report = now
            s = self.stats()
            self.progress(f"catch-up {self.target_set}: {s.events} events, {s.applied} writes ({s.deleted} deleted),"
                          f" {s.skipped} skipped, {s.unclaimed} unclaimed; {Rates.describe(fields)}")
