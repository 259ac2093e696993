"""One event stream: every part of splitter reports what it does as typed events on an EventBus.

Subscribers decide what to do with them: the console prints them, the audit log keeps every one, hooks run
programs for some, the metrics file counts them, the bench measures with them. The bus itself only dispatches,
in the order events are emitted, one at a time (emitters may be threads).

A subscriber registered with `blocking=True` may veto: its exception propagates to the emitter (a failing
`before-*` hook stops the run). Any other subscriber's exception is logged and swallowed, so that a broken
console or metrics file never stops a split. Subscribers that hold resources (the hooks' worker, the metrics
file) register a closer with `on_close`; `close()` runs them once, when the command ends.

The fields of each type are listed beside it below: hooks receive them as environment variables, the metrics
file and the bench read them, so an emitter that renames one breaks those readers (tests/test_events.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

log = logging.getLogger("splitter.events")

Level = Literal["debug", "info", "warning", "error"]


class EventType(str, Enum):
    """What happened. The value is the event's name in JSON, hook names and metrics."""

    COMMAND_STARTED = "command.started"      # a command began: command, config, state_dir
    COMMAND_FINISHED = "command.finished"    # it ended: command, exit_code, seconds
    STEP_STARTED = "step.started"            # the runner begins a step (after its precheck)
    STEP_DONE = "step.done"                  # verified and checkpointed: seconds, attempts
    STEP_FAILED = "step.failed"              # error, hint
    ACTION = "action"                        # one change made by the applier: what, where, result, seconds
    HOST_CHECK = "host.check"                # a read-only playbook run (reachability, dbpaths): playbook, hosts,
                                             # result, seconds
    RETRY = "retry"                          # something is tried again: what, attempt, reason, wait
    WAITING = "waiting"                      # a wait: what, state (waiting|done|timed-out), seconds, detail
    GATE_WAITING = "gate.waiting"            # gate, instruction
    GATE_CONFIRMED = "gate.confirmed"        # gate, by
    BEFORE_CUTOVER = "before.cutover"        # the fence is about to go up (hooks may veto)
    CUTOVER = "cutover"                      # phase: fenced, drained, switched, verified, reversed, final, ...
    CATCHUP = "catchup"                      # a stream's counters, lag (seconds, events), rates, drain estimate
    CLEANUP_STARTED = "cleanup.started"      # set, other_set, expected (about how many to delete), dry_run
    CLEANUP_CHUNK = "cleanup.chunk"          # set, namespace, deleted, kept, deleted_run, throttle
    CLEANUP_WAIT = "cleanup.wait"            # set, reason, kind, seconds, action (wait, or go at a new pace), throttle
    CLEANUP_DONE = "cleanup.done"            # set, deleted, kept, kept_by, orphans_removed, stopped, reason, done
    VERIFY_PROGRESS = "verify.progress"      # ranges done / total, docs, eta
    VERIFY_DONE = "verify.done"              # ok, summary
    HOOK = "hook"                            # a hook program ran: hook, for_event, exit_code, seconds, result
    PROGRESS = "progress"                    # a sentence for the operator
    WARNING = "warning"                      # a sentence the operator should read


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Event:
    """One thing that happened: its type, a sentence for humans, and fields for programs."""

    type: EventType
    message: str
    level: Level = "info"
    step: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=_now)

    @property
    def name(self) -> str:
        return self.type.value

    def to_json(self) -> dict[str, Any]:
        """Flat JSON: the fixed keys first, then the type's own fields (which never override them)."""
        fixed = {"event": self.name, "at": self.at, "level": self.level, "message": self.message,
                 "step": self.step}
        return {**{k: v for k, v in self.data.items() if k not in fixed}, **fixed}


Handler = Callable[[Event], None]


@dataclass
class _Subscription:
    handler: Handler
    types: frozenset[EventType] | None
    blocking: bool


class EventBus:
    """Dispatches events to subscribers. `step` is stamped on every event emitted while a step runs."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.RLock()
        self._closers: list[Callable[[], None]] = []
        self.step: str | None = None

    def subscribe(self, handler: Handler, *, types: set[EventType] | None = None,
                  blocking: bool = False) -> Callable[[], None]:
        """Call `handler` for every event (or those of `types`); returns a function that unsubscribes."""
        sub = _Subscription(handler, frozenset(types) if types else None, blocking)
        with self._lock:
            self._subscriptions.append(sub)

        def unsubscribe() -> None:
            with self._lock:
                if sub in self._subscriptions:
                    self._subscriptions.remove(sub)

        return unsubscribe

    def publish(self, event: Event) -> Event:
        with self._lock:
            subscriptions = list(self._subscriptions)
            for sub in subscriptions:
                if sub.types is not None and event.type not in sub.types:
                    continue
                if sub.blocking:
                    sub.handler(event)
                    continue
                try:
                    sub.handler(event)
                except Exception:  # a broken subscriber must not stop the work it reports on
                    log.exception("event subscriber %r failed on %s", sub.handler, event.name)
        return event

    def emit(self, type_: EventType, message: str, *, level: Level = "info", step: str | None = None,
             **data: Any) -> Event:
        return self.publish(Event(type_, message, level, step or self.step, data))

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run `closer` when the command ends (flush the hooks' queue, write the metrics file a last time)."""
        with self._lock:
            self._closers.append(closer)

    def close(self) -> None:
        """Run the closers, once each, in the order they were registered; a failing closer is logged."""
        with self._lock:
            closers, self._closers = self._closers, []
        for closer in closers:
            try:
                closer()
            except Exception:  # one broken observer must not keep the others from flushing
                log.exception("closing an event subscriber failed")

    # -- the common sentences -------------------------------------------------------------------------
    def progress(self, message: str) -> None:
        """A sentence for the operator; also usable wherever a `Callable[[str], None]` progress is expected."""
        self.emit(EventType.PROGRESS, message)

    def warning(self, message: str, **data: Any) -> None:
        self.emit(EventType.WARNING, message, level="warning", **data)

    @contextmanager
    def in_step(self, step_id: str) -> Iterator[None]:
        previous, self.step = self.step, step_id
        try:
            yield
        finally:
            self.step = previous


class Recorder:
    """A subscriber that keeps every event in memory (tests and the bench)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, *types: EventType) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.type in types]


def quiet_bus() -> EventBus:
    """A bus nobody listens to (library use without a console)."""
    return EventBus()
