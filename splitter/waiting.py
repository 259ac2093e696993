"""Polling with a deadline and visible progress: one loop for everything that waits on mongod."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from splitter.errors import OperationalError, RetryableError

T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], *, timeout: float, interval: float = 0.5,
               progress: Callable[[str], None] | None = None, describe: Callable[[], str] | None = None,
               say_every: float = 5.0) -> T:
    """Poll check() until it returns something truthy; transient driver errors count as "not yet".
    Says what it waits for every `say_every` seconds; raises OperationalError after `timeout`."""
    started = time.monotonic()
    last_said = 0.0
    while True:
        try:
            result: Any = check()
            if result:
                return result
        except (PyMongoError, RetryableError):
            pass
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise OperationalError(f"timed out after {timeout:.0f}s waiting for {what}"
                                   + (f" ({describe()})" if describe else ""))
        if progress and elapsed - last_said >= say_every:
            last_said = elapsed
            progress(f"waiting for {what} ({elapsed:.0f}s)" + (f": {describe()}" if describe else ""))
        time.sleep(interval)
