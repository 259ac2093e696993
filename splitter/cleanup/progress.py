"""How a run shows its progress: a rich bar with rate and ETA on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


class ProgressSink(Protocol):
    """Receives a worker's progress; must be thread-safe (one worker per set may run at a time)."""

    def start(self, set_name: str, total: int) -> None: ...

    def advance(self, set_name: str, deleted: int) -> None: ...

    def status(self, set_name: str, text: str) -> None: ...


class NullProgress:
    """Shows nothing."""

    def start(self, set_name: str, total: int) -> None:
        return None

    def advance(self, set_name: str, deleted: int) -> None:
        return None

    def status(self, set_name: str, text: str) -> None:
        return None


class PlainProgress:
    """Plain lines (to stderr by default): status changes at once, counts at most every `every` seconds."""

    def __init__(self, stream: IO[str] | None = None, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_line: dict[str, float] = {}
        self._last_status: dict[str, str] = {}

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def start(self, set_name: str, total: int) -> None:
        with self._lock:
            self._total[set_name] = total
            self._done[set_name] = 0
            self._started[set_name] = self._last_line[set_name] = time.monotonic()
            self._line(f"{set_name}: about {total} documents to delete")

    def advance(self, set_name: str, deleted: int) -> None:
        with self._lock:
            self._done[set_name] = self._done.get(set_name, 0) + deleted
            now = time.monotonic()
            if now - self._last_line.get(set_name, 0.0) < self.every:
                return
            self._last_line[set_name] = now
            done, total = self._done[set_name], self._total.get(set_name, 0)
            rate = done / max(now - self._started.get(set_name, now), 1e-6)
            eta = f", ETA {int(max(total - done, 0) / rate)}s" if rate > 0 and total else ""
            self._line(f"{set_name}: {done}/{total} deleted, {rate:.0f} docs/s{eta}")

    def status(self, set_name: str, text: str) -> None:
        with self._lock:
            if self._last_status.get(set_name) != text:
                self._last_status[set_name] = text
                self._line(f"{set_name}: {text}")


class RateColumn(ProgressColumn):
    """Documents per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:.0f} docs/s")


class RichProgress:
    """A rich bar per set (docs deleted of about N, rate, ETA) and the current status; use as a context."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            RateColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
            console=console, transient=False,
        )
        self._tasks: dict[str, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def start(self, set_name: str, total: int) -> None:
        with self._lock:
            self._tasks[set_name] = self.progress.add_task(f"{set_name} deleting", total=total or None, status="")

    def advance(self, set_name: str, deleted: int) -> None:
        with self._lock:
            if set_name in self._tasks:
                self.progress.advance(self._tasks[set_name], deleted)

    def status(self, set_name: str, text: str) -> None:
        with self._lock:
            if set_name in self._tasks:
                self.progress.update(self._tasks[set_name], status=text)
