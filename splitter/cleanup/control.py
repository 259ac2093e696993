"""Runtime control without a restart: the pause flag file, SIGUSR1 (toggle pause), SIGTERM (stop after the
current batch), and the lock that keeps two cleanups off one state dir.

Touches <state_dir>/cleanup.pause (only reads it) and <state_dir>/cleanup.lock. Signal handlers only set flags.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from splitter.errors import LockHeld
from splitter.store.files import StateFiles
from splitter.store.lock import StateLock


class RunControl:
    """Pause and stop flags shared by the workers of one run; `wait` wakes early when a flag changes."""

    def __init__(self, state_dir: Path) -> None:
        self.pause_file = StateFiles(state_dir).pause
        self._signal_paused = False
        self._stop: str | None = None
        self._wake = threading.Event()
        self._previous: dict[int, Any] = {}

    # -- flags ----------------------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        self._signal_paused = not self._signal_paused
        self._wake.set()

    def request_stop(self, reason: str) -> None:
        self._stop = reason
        self._wake.set()

    @property
    def stop_requested(self) -> str | None:
        return self._stop

    def paused(self) -> str | None:
        """Why the run is paused, or None."""
        if self.pause_file.exists():
            return f"the pause file {self.pause_file} exists (remove it to continue)"
        if self._signal_paused:
            return f"SIGUSR1 received (send SIGUSR1 to pid {os.getpid()} again to continue)"
        return None

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; returns early on a pause toggle or a stop request."""
        if seconds <= 0:
            return
        self._wake.wait(seconds)
        self._wake.clear()

    # -- signals (main thread only) -------------------------------------------------------------------
    def install_signals(self) -> None:
        def on_usr1(_signum: int, _frame: FrameType | None) -> None:
            self.toggle_pause()

        def on_term(_signum: int, _frame: FrameType | None) -> None:
            self.request_stop("stopped by SIGTERM after the current batch")

        for signum, handler in ((signal.SIGUSR1, on_usr1), (signal.SIGTERM, on_term)):
            self._previous[signum] = signal.signal(signum, handler)

    def restore_signals(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class CleanupLock(StateLock):
    """The state dir's lock for cleanup (<state_dir>/cleanup.lock), with a hint on pausing or stopping the holder."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, "cleanup")

    def acquire(self, command: str = "splitter cleanup") -> None:
        try:
            super().acquire(command)
        except LockHeld as exc:
            pid, host = self.holder().get("pid", "?"), self.holder().get("host", "?")
            raise LockHeld(f"another cleanup is running: {exc.message}",
                           hint=f"wait for it to finish, pause it (touch {self.files.pause}) "
                                f"or stop it (kill -TERM {pid} on {host})") from None

    def __enter__(self) -> CleanupLock:
        self.acquire()
        return self
