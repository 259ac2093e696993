"""Polling with a deadline and visible progress: one loop for everything that waits on mongod.

With an event bus, a wait is reported as `waiting` events: `state="waiting"` every `say_every` seconds while it
lasts, then one `state="done"` (or `"timed-out"`) with its `seconds` (the bench measures waits with these).
Without one (the lab), a plain `progress` callback gets the same sentences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from splitter.errors import OperationalError, RetryableError
from splitter.events import EventBus, EventType

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], *, timeout: float, interval: float = 0.5,
               progress: Callable[[str], None] | None = None, describe: Callable[[], str] | None = None,
               say_every: float = 5.0, events: EventBus | None = None) -> T:
    """Poll check() until it returns something truthy; transient driver errors count as "not yet".
    Says what it waits for every `say_every` seconds; raises OperationalError after `timeout`."""
    started = time.monotonic()
    last_said = 0.0

    def report(state: str, message: str) -> None:
        if events is not None:
            level = "info" if state == "waiting" else "debug"  # a timeout is said by the error it raises
            events.emit(EventType.WAITING, message, level=level, what=what, state=state,
                        seconds=round(time.monotonic() - started, 3))
        elif progress is not None and state == "waiting":
            progress(message)

    while True:
        try:
            result: Any = check()
            if result:
                report("done", f"waited {time.monotonic() - started:.1f}s for {what}")
                return result
        except (PyMongoError, RetryableError):
            pass
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            detail = f" ({describe()})" if describe else ""
            report("timed-out", f"gave up waiting for {what} after {timeout:.0f}s{detail}")
            raise OperationalError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        if elapsed - last_said >= say_every:
            last_said = elapsed
            report("waiting", f"waiting for {what} ({elapsed:.0f}s)" + (f": {describe()}" if describe else ""))
        time.sleep(interval)
