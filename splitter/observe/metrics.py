"""Metrics: a Prometheus textfile (node_exporter's textfile collector) kept up to date from the event stream.

`RunMetrics` turns events into samples (pure: no I/O, unit-tested); `MetricsFile` subscribes it to a bus and
rewrites the file atomically (tmp + rename in the same directory, mode 0644 so node_exporter can read it) at most
once per `interval`, and once more when the command ends. It is seeded from the checkpoint, so a resumed run shows
the steps finished by earlier runs. Names follow Prometheus conventions: base units (`_seconds`), `_total` for
counters, one series per state with value 1 for the current one (`splitter_step_state{step,state}`).

Touches: the metrics file given with `--metrics-file` (replaces it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from splitter.events import Event, EventBus, EventType
from splitter.store.checkpoint import STEP_STATES, RunState

LIVE_STEP_STATES: tuple[str, ...] = (*STEP_STATES, "waiting")
CUTOVER_STATES = ("split", "switching", "switched", "reversing", "reversed", "final")

# name -> (type, help). The order here is the order in the file.
FAMILIES: dict[str, tuple[str, str]] = {
    "splitter_command_running": ("gauge", "1 while the splitter command runs, 0 once it ended."),
    "splitter_command_exit_code": ("gauge", "Exit code of the command once it ended (0 ok, 1 failure, 130 Ctrl-C)."),
    "splitter_last_event_timestamp_seconds": ("gauge", "Unix time of the last event: stale means nothing happens."),
    "splitter_step_state": ("gauge", "1 for the state each step is in (pending, running, waiting, done, failed)."),
    "splitter_step_duration_seconds": ("gauge", "How long the step took when it last finished."),
    "splitter_step_failures_total": ("counter", "Step failures seen by this command."),
    "splitter_gate_waiting": ("gauge", "1 while the run waits at the gate for the operator's confirmation."),
    "splitter_gate_passed": ("gauge", "1 once the gate was confirmed."),
    "splitter_cutover_state": ("gauge", "1 for the cutover state the traffic of the moving residues is in."),
    "splitter_cutover_epoch": ("gauge", "Routing epoch of the last switch."),
    "splitter_actions_total": ("counter", "Changes made by the applier, by result."),
    "splitter_retries_total": ("counter", "Operations tried again after a transient error."),
    "splitter_warnings_total": ("counter", "Warnings reported to the operator."),
    "splitter_hook_runs_total": ("counter", "Hook program runs, by hook and result."),
    "splitter_catchup_lag_seconds": ("gauge", "Seconds between the source's last write and what the stream applied."),
    "splitter_catchup_lag_events": ("gauge", "Source oplog entries of the routed databases not applied yet."),
    "splitter_catchup_events_per_second": ("gauge", "Rate at which the stream applies change events."),
    "splitter_catchup_source_events_per_second": ("gauge", "Rate at which the source writes the stream's half."),
    "splitter_catchup_drain_estimate_seconds": ("gauge", "Estimated time to drain the stream's lag."),
    "splitter_catchup_events_total": ("counter", "Change events read by the stream."),
    "splitter_catchup_applied_total": ("counter", "Writes applied to the target by the stream."),
    "splitter_cleanup_deleted_total": ("counter", "Documents deleted by the cleanup of a set."),
    "splitter_cleanup_kept_total": ("counter", "Documents kept by the interlock on a set."),
    "splitter_cleanup_deleted_per_second": ("gauge", "Recent delete rate of the cleanup of a set."),
    "splitter_cleanup_waiting": ("gauge", "1 while the cleanup of a set waits, by throttle reason."),
    "splitter_cleanup_waits_total": ("counter", "Throttle waits of the cleanup of a set, by reason."),
    "splitter_cleanup_done": ("gauge", "1 once the cleanup run of a set ended."),
    "splitter_verify_ranges_done": ("gauge", "_id ranges compared so far."),
    "splitter_verify_ranges_total": ("gauge", "_id ranges to compare."),
    "splitter_verify_docs_total": ("counter", "Documents compared so far."),
    "splitter_verify_eta_seconds": ("gauge", "Estimated seconds until the verification ends."),
    "splitter_verify_ok": ("gauge", "1 when the last verification found both sides equal, 0 when they differ."),
}
CATCHUP_GAUGES = {"lag_seconds": "splitter_catchup_lag_seconds", "lag_events": "splitter_catchup_lag_events",
                  "rate_per_second": "splitter_catchup_events_per_second",
                  "source_rate_per_second": "splitter_catchup_source_events_per_second",
                  "drain_estimate_seconds": "splitter_catchup_drain_estimate_seconds"}
CATCHUP_COUNTERS = {"events": "splitter_catchup_events_total", "applied": "splitter_catchup_applied_total"}
VERIFY_GAUGES = {"ranges_done": "splitter_verify_ranges_done", "ranges_total": "splitter_verify_ranges_total",
                 "docs": "splitter_verify_docs_total", "eta_seconds": "splitter_verify_eta_seconds"}

Labels = tuple[tuple[str, str], ...]


def live_step_states(state: RunState, step_gates: Mapping[str, str | None]) -> dict[str, str]:
    """Every step's state as the checkpoint has it, except `waiting` for the step whose gate the run waits at."""
    states = {}
    for step_id, gate in step_gates.items():
        record = state.steps.get(step_id)
        current = record.state if record else "pending"
        states[step_id] = "waiting" if gate and gate == state.waiting_gate and current != "done" else current
    return states


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class RunMetrics:
    """The current value of every series, updated by events."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, Labels], float] = {}
        self._steps: list[str] = []
        self._wait_kinds: dict[str, set[str]] = {}

    # -- setting values -------------------------------------------------------------------------------------------
    def set(self, name: str, value: float, **labels: str) -> None:
        self.values[(name, tuple(sorted(labels.items())))] = float(value)

    def add(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, tuple(sorted(labels.items()))))

    def set_state(self, name: str, current: str, states: Iterable[str], **labels: str) -> None:
        for state in states:
            self.set(name, 1.0 if state == current else 0.0, **labels, state=state)

    def step_state(self, step: str, state: str) -> None:
        if step not in self._steps:
            self._steps.append(step)
        self.set_state("splitter_step_state", state, LIVE_STEP_STATES, step=step)

    # -- the checkpoint, before any event ------------------------------------------------------------------------
    def seed(self, state: RunState, step_gates: Mapping[str, str | None]) -> RunMetrics:
        for step, current in live_step_states(state, step_gates).items():
            self.step_state(step, current)
        for gate in (g for g in step_gates.values() if g):
            self.set("splitter_gate_waiting", 1.0 if state.waiting_gate == gate else 0.0, gate=gate)
            self.set("splitter_gate_passed", 1.0 if gate in state.gates else 0.0, gate=gate)
        if state.cutover is not None:
            self.set_state("splitter_cutover_state", state.cutover.state, CUTOVER_STATES)
            self.set("splitter_cutover_epoch", state.cutover.epoch)
        return self

    # -- events ----------------------------------------------------------------------------------------------------
    def update(self, event: Event) -> None:
        data = event.data
        self.set("splitter_last_event_timestamp_seconds", round(time.time(), 3))
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, data)

    def _command(self, event: Event, data: Mapping[str, Any]) -> None:
        command = str(data.get("command") or "")
        finished = event.type is EventType.COMMAND_FINISHED
        self.set("splitter_command_running", 0.0 if finished else 1.0, command=command)
        if finished and _number(data.get("exit_code")) is not None:
            self.set("splitter_command_exit_code", float(data["exit_code"]), command=command)

    def _step(self, event: Event, data: Mapping[str, Any]) -> None:
        if not event.step:
            return
        if event.type is EventType.STEP_STARTED:
            self.step_state(event.step, "running")
        elif event.type is EventType.STEP_DONE:
            self.step_state(event.step, "done")
            if (seconds := _number(data.get("seconds"))) is not None:
                self.set("splitter_step_duration_seconds", seconds, step=event.step)
        else:
            self.step_state(event.step, "failed")
            self.add("splitter_step_failures_total", step=event.step)

    def _gate(self, event: Event, data: Mapping[str, Any]) -> None:
        gate = str(data.get("gate") or event.step or "")
        waiting = event.type is EventType.GATE_WAITING
        self.set("splitter_gate_waiting", 1.0 if waiting else 0.0, gate=gate)
        if not waiting:
            self.set("splitter_gate_passed", 1.0, gate=gate)
        if event.step:
            self.step_state(event.step, "waiting" if waiting else "running")

    def _counted(self, event: Event, data: Mapping[str, Any]) -> None:
        if event.type is EventType.ACTION:
            self.add("splitter_actions_total", result=str(data.get("result") or "ok"))
        elif event.type is EventType.RETRY:
            self.add("splitter_retries_total")
        elif event.type is EventType.WARNING:
            self.add("splitter_warnings_total")
        else:
            self.add("splitter_hook_runs_total", hook=str(data.get("hook") or ""), result=str(data.get("result")))

    def _cutover(self, _event: Event, data: Mapping[str, Any]) -> None:
        if data.get("state") in CUTOVER_STATES:
            self.set_state("splitter_cutover_state", str(data["state"]), CUTOVER_STATES)
        if (epoch := _number(data.get("epoch"))) is not None:
            self.set("splitter_cutover_epoch", epoch)

    def _catchup(self, _event: Event, data: Mapping[str, Any]) -> None:
        stream = str(data.get("stream") or data.get("target_set") or "")
        for key, name in CATCHUP_GAUGES.items():
            if (value := _number(data.get(key))) is not None:
                self.set(name, value, stream=stream)
        counters = data.get("counters") if isinstance(data.get("counters"), Mapping) else {}
        for key, name in CATCHUP_COUNTERS.items():
            if (value := _number(counters.get(key))) is not None:
                self.set(name, value, stream=stream)

    def _cleanup(self, event: Event, data: Mapping[str, Any]) -> None:
        set_name = str(data.get("set") or "")
        for key, name in (("deleted", "splitter_cleanup_deleted_total"), ("kept", "splitter_cleanup_kept_total"),
                          ("rate_per_second", "splitter_cleanup_deleted_per_second")):
            if (value := _number(data.get(key))) is not None:
                self.set(name, value, set=set_name)
        waiting_kind = str(data.get("kind") or "other") if event.type is EventType.CLEANUP_WAIT else None
        kinds = self._wait_kinds.setdefault(set_name, set())
        kinds.update([waiting_kind] if waiting_kind else [])
        for kind in kinds:  # one reason at a time: the others go back to 0
            self.set("splitter_cleanup_waiting", 1.0 if kind == waiting_kind else 0.0, set=set_name, kind=kind)
        if waiting_kind:
            self.add("splitter_cleanup_waits_total", set=set_name, kind=waiting_kind)
        if event.type is EventType.CLEANUP_DONE:
            self.set("splitter_cleanup_done", 1.0, set=set_name)

    def _verify(self, event: Event, data: Mapping[str, Any]) -> None:
        if event.type is EventType.VERIFY_DONE:
            self.set("splitter_verify_ok", 1.0 if data.get("ok") else 0.0)
            return
        for key, name in VERIFY_GAUGES.items():
            if (value := _number(data.get(key))) is not None:
                self.set(name, value)

    # -- the file's text ----------------------------------------------------------------------------------------
    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines = []
        for name, (kind, help_text) in FAMILIES.items():
            samples = sorted(((labels, value) for (n, labels), value in self.values.items() if n == name),
                             key=lambda s: self._order(s[0]))
            if not samples:
                continue
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{format_labels(labels)} {format_value(value)}" for labels, value in samples]
        return "\n".join(lines) + "\n"

    def _order(self, labels: Labels) -> tuple:
        step = dict(labels).get("step")
        return (self._steps.index(step) if step in self._steps else len(self._steps), labels)


_HANDLERS = {
    EventType.COMMAND_STARTED: RunMetrics._command, EventType.COMMAND_FINISHED: RunMetrics._command,
    EventType.STEP_STARTED: RunMetrics._step, EventType.STEP_DONE: RunMetrics._step,
    EventType.STEP_FAILED: RunMetrics._step,
    EventType.GATE_WAITING: RunMetrics._gate, EventType.GATE_CONFIRMED: RunMetrics._gate,
    EventType.ACTION: RunMetrics._counted, EventType.RETRY: RunMetrics._counted,
    EventType.WARNING: RunMetrics._counted, EventType.HOOK: RunMetrics._counted,
    EventType.CUTOVER: RunMetrics._cutover, EventType.CATCHUP: RunMetrics._catchup,
    EventType.CLEANUP_CHUNK: RunMetrics._cleanup, EventType.CLEANUP_WAIT: RunMetrics._cleanup,
    EventType.CLEANUP_DONE: RunMetrics._cleanup,
    EventType.VERIFY_PROGRESS: RunMetrics._verify, EventType.VERIFY_DONE: RunMetrics._verify,
}


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels) + "}" if labels else ""


def format_value(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


class MetricsFile:
    """Keeps `path` equal to `metrics.render()`: written when attached, at most every `interval` seconds while
    events arrive (0: after every event), and when the bus closes."""

    def __init__(self, path: Path, metrics: RunMetrics | None = None, *, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.metrics = metrics or RunMetrics()
        self.interval = interval
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None

    def attach(self, bus: EventBus) -> MetricsFile:
        bus.subscribe(self.handle)
        bus.on_close(self.close)
        self.write()
        return self

    def handle(self, event: Event) -> None:
        with self._lock:
            self.metrics.update(event)
        if self.interval <= 0:
            self.write()
            return
        self._dirty.set()
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="metrics-file", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            if self._dirty.wait(0.2) and not self._closed.is_set():
                self._dirty.clear()
                self.write()
                self._closed.wait(self.interval)

    def write(self) -> None:
        with self._lock:
            text = self.metrics.render()
        write_atomically(self.path, text)

    def close(self) -> None:
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.write()


def write_atomically(path: Path, text: str) -> None:
    """node_exporter must never read half a file: write a temporary file beside it, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o644)  # node_exporter runs as another user; nothing secret in here
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
