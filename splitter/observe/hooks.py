"""Hooks: the operator's own programs, run on events (gh-ost's hooks are the model).

A hook is an executable file in split.yaml's `hooks.dir` named after the hook (`on-step-done`), or starting with
that name and `-` or `.` (`on-failure-page-oncall`, `on-failure.slack`); several of one name run in name order.
Each gets the event as environment variables (`SPLITTER_EVENT`, `SPLITTER_HOOK`, `SPLITTER_MESSAGE`,
`SPLITTER_STEP`, `SPLITTER_CONFIG`, ... and one `SPLITTER_<FIELD>` per field of the event) and as one JSON
object on stdin, and must finish within `hooks.timeout` (its process group is killed after that). What hooks
print goes to `<state_dir>/hooks.log`; every run is a `hook` event (audit log, metrics).

`before-*` hooks are a veto: they run on the emitting thread and a failure (non-zero exit, timeout) raises
HookFailed, which stops the command with exit 1 and the hook's output. `on-*` hooks never hold up the work: they
are queued and run by one worker thread, which the command's end flushes within a bound.

Touches: the hooks directory (lists and executes it), <state_dir>/hooks.log (appends, 0600).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitter.errors import OperationalError
from splitter.events import Event, EventBus, EventType
from splitter.store.atomic import now_iso

log = logging.getLogger(__name__)

# The one table: which hook runs for which event. `before-*` hooks may veto, `on-*` hooks only hear about it.
HOOKS: dict[EventType, str] = {
    EventType.COMMAND_STARTED: "on-start",
    EventType.COMMAND_FINISHED: "on-exit",
    EventType.STEP_STARTED: "before-step",
    EventType.STEP_DONE: "on-step-done",
    EventType.STEP_FAILED: "on-failure",
    EventType.GATE_WAITING: "on-gate-waiting",
    EventType.GATE_CONFIRMED: "on-gate-confirmed",
    EventType.BEFORE_CUTOVER: "before-cutover",
    EventType.CUTOVER: "on-cutover",
    EventType.CLEANUP_DONE: "on-cleanup-done",
    EventType.VERIFY_DONE: "on-verify-done",
    EventType.RETRY: "on-retry",
    EventType.WARNING: "on-warning",
}
VETO_PREFIX = "before-"
OUTPUT_TAIL = 2000  # characters of a failed hook's output quoted in its error and event
QUEUE_LIMIT = 1000


def is_veto(hook: str) -> bool:
    return hook.startswith(VETO_PREFIX)


class HookFailed(OperationalError):
    """A `before-*` hook failed: the command stops before the action the hook guards."""


@dataclass(frozen=True)
class HookResult:
    hook: str
    program: Path
    exit_code: int | None  # None: killed after the timeout
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def outcome(self) -> str:
        return "timed out" if self.exit_code is None else f"exit {self.exit_code}"

    def tail(self) -> str:
        text = self.output.strip()
        return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]


def env_name(key: str) -> str:
    return "SPLITTER_" + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def hook_environment(event: Event, hook: str, context: Mapping[str, Any], base: Mapping[str, str],
                     hidden: Iterable[str] = ()) -> dict[str, str]:
    """The process environment of a hook: ours without the variables that hold credentials, then the event's
    fields, then the fixed names (which a field never overrides)."""
    env = {k: v for k, v in base.items() if k not in set(hidden)}
    env.update({env_name(k): env_value(v) for k, v in event.data.items()})
    env.update({env_name(k): env_value(v) for k, v in context.items()})
    env.update({"SPLITTER_HOOK": hook, "SPLITTER_EVENT": event.name, "SPLITTER_MESSAGE": event.message,
                "SPLITTER_LEVEL": event.level, "SPLITTER_AT": event.at, "SPLITTER_STEP": event.step or ""})
    return env


def run_program(program: Path, env: Mapping[str, str], stdin: str, timeout: float, hook: str) -> HookResult:
    """Run one hook program in its own process group; after `timeout` the whole group is killed."""
    started = time.monotonic()
    process = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=dict(env), start_new_session=True, text=True,
                               errors="replace")
    try:
        output, _ = process.communicate(stdin, timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    return HookResult(hook, program, code, round(time.monotonic() - started, 3), output or "")


class HookRunner:
    """Finds and runs the hooks of one directory for the events of one bus."""

    def __init__(self, directory: Path, *, timeout: float, log_path: Path, context: Mapping[str, Any] | None = None,
                 hidden_env: Iterable[str] = (), flush_timeout: float | None = None) -> None:
        self.directory = Path(directory)
        self.timeout = timeout
        self.log_path = Path(log_path)
        self.context = dict(context or {})
        self.hidden_env = frozenset(hidden_env)
        self.flush_timeout = timeout + 5 if flush_timeout is None else flush_timeout
        self._bus: EventBus | None = None
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE_LIMIT)
        self._worker: threading.Thread | None = None
        self._log_lock = threading.Lock()
        self._warned: set[Path] = set()

    def attach(self, bus: EventBus) -> HookRunner:
        self._bus = bus
        vetoes = {t for t, hook in HOOKS.items() if is_veto(hook)}
        bus.subscribe(self._veto, types=vetoes, blocking=True)
        bus.subscribe(self._enqueue, types=set(HOOKS) - vetoes)
        bus.on_close(self.close)
        return self

    def programs(self, hook: str) -> list[Path]:
        """The executables for `hook`, in name order (a file that is not executable is reported once)."""
        try:
            entries = sorted(self.directory.iterdir())
        except OSError:
            return []
        found = []
        for path in entries:
            if not (path.name == hook or path.name.startswith((f"{hook}-", f"{hook}."))) or not path.is_file():
                continue
            if os.access(path, os.X_OK):
                found.append(path)
            elif path not in self._warned and self._bus is not None:
                self._warned.add(path)
                self._bus.warning(f"hook {path} is not executable: not run (chmod +x it to use it)", hook=hook)
        return found

    def run(self, event: Event) -> list[HookResult]:
        """Run every program of the event's hook, one after the other, keep their output, report each run."""
        hook = HOOKS[event.type]
        results = []
        for program in self.programs(hook):
            env = hook_environment(event, hook, self.context, os.environ, self.hidden_env)
            stdin = json.dumps({**event.to_json(), "hook": hook, **self.context}, default=str)
            try:
                result = run_program(program, env, stdin, self.timeout, hook)
            except OSError as exc:  # e.g. a script without its interpreter
                result = HookResult(hook, program, 127, 0.0, f"cannot execute: {exc}")
            self._keep(event, result)
            results.append(result)
        return results

    def _keep(self, event: Event, result: HookResult) -> None:
        header = (f"=== {now_iso()} {result.hook} for {event.name}" + (f" (step {event.step})" if event.step else "")
                  + f": {result.program} {result.outcome} in {result.seconds:.2f}s\n")
        with self._log_lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(header + result.output + ("" if result.output.endswith("\n") or not result.output
                                                       else "\n"))
        if self._bus is not None:
            failed = "" if result.ok else f" (output in {self.log_path})"
            self._bus.emit(EventType.HOOK, f"hook {result.program.name} for {event.name}: {result.outcome}{failed}",
                           level="info" if result.ok else "warning", step=event.step, hook=result.hook,
                           program=str(result.program), for_event=event.name, exit_code=result.exit_code,
                           seconds=result.seconds, result="ok" if result.ok else "failed")

    # -- before-*: on the emitting thread, a failure stops the command --------------------------------------------
    def _veto(self, event: Event) -> None:
        for result in self.run(event):
            if not result.ok:
                command = self.context.get("command") or "run"
                raise HookFailed(
                    f"hook {result.hook} ({result.program}) refused {event.name}"
                    + (f" of step {event.step}" if event.step else "") + f": {result.outcome}"
                    + (f"; it said:\n{result.tail()}" if result.tail() else " and printed nothing"),
                    hint=f"fix what the hook checks (its output is kept in {self.log_path}), then run "
                         f"`splitter {command} -c {self.context.get('config', 'split.yaml')}` again")

    # -- on-*: queued, one worker --------------------------------------------------------------------------------
    def _enqueue(self, event: Event) -> None:
        if not self.programs(HOOKS[event.type]):
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.error("hooks: %d runs queued already; %s for %s dropped", QUEUE_LIMIT, HOOKS[event.type], event.name)
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._drain, name="hooks", daemon=True)
            self._worker.start()

    def _drain(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.run(event)
            except Exception:  # a hook problem must not end the worker: later hooks still run
                log.exception("hook %s for %s", HOOKS[event.type], event.name)

    def close(self) -> None:
        """Let queued `on-*` hooks finish, waiting at most `flush_timeout` seconds in all."""
        if self._worker is None:
            return
        with contextlib.suppress(queue.Full):  # the join below is bounded all the same
            self._queue.put(None, timeout=self.flush_timeout)
        self._worker.join(self.flush_timeout)
        if self._worker.is_alive():
            log.error("hooks: still running after %.0fs at exit; %d queued runs abandoned", self.flush_timeout,
                      self._queue.qsize())
        self._worker = None
