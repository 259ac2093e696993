"""Observers of a working command's events: the audit log, the operator's hooks and the metrics file.

`observe_command` is what `open_session` (and the cleanup session) call for every command that changes
something; read-only commands (plan, status) keep to the console. `finish_commands` (called by `main` when the
command ends, whatever the outcome) announces the exit code and flushes the hooks and the metrics file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from splitter.config import SplitConfig, parse_duration
from splitter.events import EventBus, EventType
from splitter.observe.hooks import HookFailed, HookRunner
from splitter.observe.metrics import MetricsFile, RunMetrics, live_step_states
from splitter.observe.settings import SETTINGS
from splitter.store.audit import AuditLog
from splitter.store.checkpoint import RunState
from splitter.store.files import StateFiles

__all__ = ["HookFailed", "finish_commands", "live_step_states", "observe_command"]

_observed: list[tuple[EventBus, dict[str, str], float]] = []
_observed_lock = threading.Lock()


def command_context(config: SplitConfig) -> dict[str, str]:
    """What every hook gets to know besides the event (environment SPLITTER_<KEY>, and on stdin)."""
    return {"command": SETTINGS.command or "", "config": str(config.config_path),
            "state_dir": str(config.state_path), "source_set": config.source.name, "target_set": config.target.name}


def observe_command(events: EventBus, config: SplitConfig, state: RunState | None = None,
                    step_gates: Mapping[str, str | None] | None = None) -> None:
    """Subscribe the audit log, the hooks of `hooks.dir` and the `--metrics-file` (seeded from `state`), then
    announce the command (`command.started`)."""
    files = StateFiles(config.state_path)
    events.subscribe(AuditLog(config.state_path).handle)
    context = command_context(config)
    if config.hooks_path is not None:
        hidden = [name for name in (config.credentials.username_env, config.credentials.password_env) if name]
        HookRunner(config.hooks_path, timeout=parse_duration(config.hooks.timeout), log_path=files.hooks_log,
                   context=context, hidden_env=hidden).attach(events)
    if SETTINGS.metrics_file is not None:
        metrics = RunMetrics().seed(state or RunState(), step_gates or {})
        MetricsFile(SETTINGS.metrics_file, metrics).attach(events)
    with _observed_lock:
        _observed.append((events, context, time.monotonic()))
    events.emit(EventType.COMMAND_STARTED, f"splitter {context['command'] or 'command'} started",
                level="debug", **context)


def finish_commands(exit_code: int) -> None:
    """Announce `command.finished` with the exit code on every observed bus, then close them (flush)."""
    with _observed_lock:
        finished, _observed[:] = list(_observed), []
    for events, context, started in finished:
        command = context["command"] or "command"
        try:
            events.emit(EventType.COMMAND_FINISHED, f"splitter {command} finished: exit {exit_code}",
                        level="debug", command=context["command"], exit_code=exit_code,
                        seconds=round(time.monotonic() - started, 3))
        finally:
            events.close()
