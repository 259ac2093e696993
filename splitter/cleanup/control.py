"""Runtime control without a restart: the pause flag file, SIGUSR1 (toggle pause), SIGTERM (stop after the
current batch), and the lock that keeps two cleanups off one state dir.

Touches <state_dir>/cleanup.pause (only reads it) and <state_dir>/cleanup.lock. Signal handlers only set flags.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import IO, Any

from splitter.engine.state import ensure_state_dir
from splitter.errors import LockHeld

PAUSE_FILE = "cleanup.pause"
LOCK_FILE = "cleanup.lock"


class RunControl:
    """Pause and stop flags shared by the workers of one run; `wait` wakes early when a flag changes."""

    def __init__(self, state_dir: Path) -> None:
        self.pause_file = Path(state_dir) / PAUSE_FILE
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


class CleanupLock:
    """An exclusive flock on <state_dir>/cleanup.lock holding 'pid host' of the owner; released on exit."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        ensure_state_dir(self.state_dir)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().split()
            handle.close()
            pid, host = [*holder, "?", "?"][:2]
            raise LockHeld(f"another cleanup is running on {self.path} (pid {pid} on host {host})",
                           hint=f"wait for it to finish, pause it (touch {self.state_dir / PAUSE_FILE}) "
                                f"or stop it (kill -TERM {pid} on {host})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> CleanupLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
