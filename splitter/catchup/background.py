"""Runs a CatchUpWorker in a daemon thread (while `run` waits at a gate) and hands its error back."""

from __future__ import annotations

import logging
import threading

from splitter.catchup.worker import CatchUpStats, CatchUpWorker
from splitter.errors import OperationalError

log = logging.getLogger(__name__)


class BackgroundCatchUp:
    """Owns one thread running `worker.run(stop)`. Touches nothing itself; the worker does."""

    def __init__(self, worker: CatchUpWorker) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"catch-up-{worker.target_set}", daemon=True)

    def _main(self) -> None:
        try:
            self.worker.run(self._stop)
        except BaseException as exc:  # kept for stop() / check(); the thread must not die silently
            log.error("catch-up %s stopped: %s", self.worker.target_set, exc)
            self._error = exc

    def start(self) -> BackgroundCatchUp:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def check(self) -> None:
        """Raise the worker's error if it stopped on one (call it while waiting at the gate)."""
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 60.0) -> CatchUpStats:
        """Ask the worker to save its position and return; raise its error if it failed."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise OperationalError(f"catch-up {self.worker.target_set}: did not stop within {timeout:.0f}s")
        self.check()
        return self.worker.stats()
