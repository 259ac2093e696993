"""How a run shows its progress, from the cleanup's events: a rich bar with rate and ETA on a terminal, or plain
timestamped lines (to stderr by default, so that `--json` keeps stdout for the report)."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from splitter.events import Event, EventType


class LineProgress:
    """An event subscriber printing plain lines: every event's sentence (not debug ones), except chunks, which
    become one count line per set at most every `every` seconds."""

    def __init__(self, stream: IO[str] | None = None, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._lock = threading.Lock()
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_line: dict[str, float] = {}

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        with self._lock:
            set_name = str(event.data.get("set", ""))
            if event.type is EventType.CLEANUP_STARTED:
                self._total[set_name] = int(event.data.get("expected", 0))
                self._done[set_name] = 0
                self._started[set_name] = self._last_line[set_name] = time.monotonic()
            elif event.type is EventType.CLEANUP_CHUNK:
                self._advance(set_name, int(event.data.get("deleted", 0)))
                return
            if event.level != "debug":
                self._line(event.message)

    def _advance(self, set_name: str, deleted: int) -> None:
        self._done[set_name] = self._done.get(set_name, 0) + deleted
        now = time.monotonic()
        if now - self._last_line.get(set_name, 0.0) < self.every:
            return
        self._last_line[set_name] = now
        done, total = self._done[set_name], self._total.get(set_name, 0)
        rate = done / max(now - self._started.get(set_name, now), 1e-6)
        eta = f", ETA {int(max(total - done, 0) / rate)}s" if rate > 0 and total else ""
        self._line(f"{set_name}: {done}/{total} deleted, {rate:.0f} docs/s{eta}")


class RateColumn(ProgressColumn):
    """Documents per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:.0f} docs/s")


class RichProgress:
    """An event subscriber drawing a rich bar per set (docs deleted of about N, rate, ETA) and its current throttle
    state; use as a context. Give it the console the event sentences are printed on, so they appear above it."""

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

    def __call__(self, event: Event) -> None:
        set_name = str(event.data.get("set", ""))
        with self._lock:
            if event.type is EventType.CLEANUP_STARTED:
                total = int(event.data.get("expected", 0))
                self._tasks[set_name] = self.progress.add_task(f"{set_name} deleting", total=total or None,
                                                               status="")
            elif set_name not in self._tasks:
                return
            elif event.type is EventType.CLEANUP_CHUNK:
                self.progress.update(self._tasks[set_name], advance=int(event.data.get("deleted", 0)),
                                     status=str(event.data.get("throttle") or "deleting"))
            elif event.type is EventType.CLEANUP_WAIT and event.data.get("action") == "wait":
                self.progress.update(self._tasks[set_name], status=str(event.data.get("kind", "waiting")))
            elif event.type is EventType.CLEANUP_DONE:
                self.progress.update(self._tasks[set_name], status=str(event.data.get("stopped", "")))
