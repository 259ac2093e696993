"""One lock per state dir and purpose (flock): two runs or cleanups cannot interleave; a dead holder frees it."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from splitter.errors import LockHeld
from splitter.store.atomic import now_iso
from splitter.store.files import StateFiles


class StateLock:
    """Holds <state_dir>/<name>.lock for the life of the process (the kernel drops it if we die)."""

    def __init__(self, state_dir: Path, name: str = "run") -> None:
        self.files = StateFiles(state_dir)
        self.path = self.files.lock(name)
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def held(self) -> dict[str, Any] | None:
        """The holder (pid, host, command, since) while a live process holds the lock, else None. Probes with a
        non-blocking flock of its own, released at once."""
        if self._fd is not None:
            return self.holder()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder() or {"pid": "?"}
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return None

    def acquire(self, command: str) -> None:
        self.files.ensure()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            who = self.holder()
            raise LockHeld(
                f"{self.path.parent} is in use by `{who.get('command', '?')}` (pid {who.get('pid', '?')} on host "
                f"{who.get('host', '?')}, since {who.get('since', '?')})",
                hint="wait for it to finish, or stop that process; a lock of a dead process is freed by itself",
            ) from exc
        # The previous holder may have died (kill -9): flock was released by the kernel, so taking it is safe.
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": now_iso()}).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
