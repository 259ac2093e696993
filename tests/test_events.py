"""The event stream's subscribers without mongod: the audit log and the JSON log get every event type, the console
follows -q/-v, logging is configured once and shows diagnostics by the same rules, waits report their length."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from splitter.cli import output
from splitter.events import Event, EventBus, EventType, Recorder
from splitter.observe import logs, settings
from splitter.observe.settings import DEBUG, NORMAL, QUIET, VERBOSE
from splitter.store.audit import AuditLog
from splitter.waiting import wait_until
from tests.helpers import run_cli


@pytest.fixture
def log_format() -> Iterator[settings.ObserveSettings]:
    """SETTINGS as the global options leave them; put back afterwards."""
    saved = (settings.SETTINGS.verbosity, settings.SETTINGS.log_format, settings.SETTINGS.metrics_file,
             settings.SETTINGS.command)
    yield settings.SETTINGS
    settings.configure(verbose=max(saved[0], 0), quiet=saved[0] < 0, log_format=saved[1], metrics_file=saved[2],
                       command=saved[3])


def _one_of_each(bus: EventBus) -> None:
    with bus.in_step("preflight"):
        for kind in EventType:
            bus.emit(kind, f"a {kind.value} event", level="warning" if kind is EventType.WARNING else "info",
                     detail=kind.value)


def test_every_event_type_reaches_the_audit_log_and_the_json_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], log_format: settings.ObserveSettings) -> None:
    settings.configure(log_format="json")
    bus = output.console_bus()
    bus.subscribe(AuditLog(tmp_path).handle)
    _one_of_each(bus)
    err = capsys.readouterr().err
    json_log = [json.loads(line) for line in err.splitlines()]
    audit = AuditLog(tmp_path).read()
    names = {kind.value for kind in EventType}
    assert {e["event"] for e in json_log} == names
    assert {e["event"] for e in audit} == names
    for record in (json_log[0], audit[0]):
        assert {"event", "at", "level", "message", "step", "detail"} <= set(record)
        assert record["step"] == "preflight"


def test_json_log_keeps_stdout_for_results_and_quiet_keeps_warnings(
        capsys: pytest.CaptureFixture[str], log_format: settings.ObserveSettings) -> None:
    settings.configure(log_format="json", quiet=True)
    bus = output.console_bus(quiet=True)
    bus.progress("routine")
    bus.warning("look at this")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [json.loads(line)["message"] for line in captured.err.splitlines()] == ["look at this"]


def test_the_console_follows_quiet_and_verbose() -> None:
    action = Event(EventType.ACTION, "replSetReconfig @ node1")
    progress = Event(EventType.PROGRESS, "[preflight] done")
    finished_wait = Event(EventType.WAITING, "waited 0.1s for x", level="debug")
    warning = Event(EventType.WARNING, "oplog short", level="warning")
    assert [output.shown(e, QUIET) for e in (action, progress, finished_wait, warning)] == [False, False, False, True]
    assert [output.shown(e, NORMAL) for e in (action, progress, finished_wait, warning)] == [False, True, False, True]
    assert [output.shown(e, VERBOSE) for e in (action, progress, finished_wait, warning)] == [True, True, True, True]


def test_the_console_marks_warnings_once(capsys: pytest.CaptureFixture[str],
                                         log_format: settings.ObserveSettings) -> None:
    settings.configure()
    bus = output.console_bus()
    bus.warning("the oplog is short")
    bus.warning("warning: already says so")
    out = capsys.readouterr().out
    assert "warning: the oplog is short" in out
    assert "warning: warning:" not in out


def test_logging_shows_diagnostics_by_verbosity(capsys: pytest.CaptureFixture[str],
                                                log_format: settings.ObserveSettings) -> None:
    """Splitter's own modules speak to the operator through events: their warnings are diagnostics (-v), which is
    why a retry no longer prints twice; libraries' warnings and everyone's errors always show."""
    handler = logs.configure_logging()
    try:
        ours, library = logging.getLogger("splitter.catchup.worker"), logging.getLogger("pymongo.serverSelection")
        ours.warning("transient error; reopening")
        library.warning("library says")
        ours.error("stream stopped")
        err = capsys.readouterr().err
        assert "reopening" not in err
        assert "warning: library says [pymongo.serverSelection]" in err
        assert "error: stream stopped [splitter.catchup.worker]" in err
        settings.configure(verbose=1, log_format="json")
        logs.apply_levels()
        ours.warning("transient error; reopening")
        record = json.loads(capsys.readouterr().err)
        assert record == {**record, "event": "log", "level": "warning", "logger": "splitter.catchup.worker"}
    finally:
        logging.getLogger().removeHandler(handler)
        settings.configure()
        logs.apply_levels()
    assert logs.levels(QUIET) == (logging.ERROR, logging.ERROR)
    assert logs.levels(DEBUG) == (logging.DEBUG, logging.INFO)


def test_a_wait_reports_while_it_waits_and_how_long_it_took() -> None:
    bus, recorder = EventBus(), Recorder()
    bus.subscribe(recorder)
    answers = iter([False, False, False, True])
    wait_until("the answer", lambda: next(answers), timeout=5, interval=0.01, say_every=0.0, events=bus)
    waits = recorder.of(EventType.WAITING)
    assert [e.data["state"] for e in waits] == ["waiting", "waiting", "waiting", "done"]
    assert waits[-1].level == "debug" and waits[-1].data["what"] == "the answer"
    assert 0.02 <= waits[-1].data["seconds"] < 5
    with pytest.raises(Exception, match="timed out"):
        wait_until("never", lambda: False, timeout=0.05, interval=0.01, events=bus)
    assert recorder.of(EventType.WAITING)[-1].data["state"] == "timed-out"


def test_bus_close_runs_each_closer_once() -> None:
    bus, closed = EventBus(), []
    bus.on_close(lambda: closed.append("a"))
    bus.on_close(lambda: 1 / 0)  # a broken closer does not keep the next from running
    bus.on_close(lambda: closed.append("b"))
    bus.close()
    bus.close()
    assert closed == ["a", "b"]


def test_cli_errors_are_json_objects_with_log_format_json(tmp_path: Path) -> None:
    result = run_cli("--log-format", "json", "status", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["event"] == "error" and error["exit_code"] == 2 and "missing.yaml" in error["message"]
    assert result.stdout == ""


def test_splitter_config_names_the_config_for_every_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from splitter.cli import _register, cli
    from splitter.errors import BadInput

    _register()
    missing = str(tmp_path / "from-env.yaml")
    for command in (["status"], ["plan"], ["run"], ["rollback"], ["verify"], ["cleanup", "--set", "both"],
                    ["confirm", "deploy-client-v1"]):
        result = CliRunner().invoke(cli, command, env={"SPLITTER_CONFIG": missing})
        assert isinstance(result.exception, BadInput), (command, result.output)
        assert "from-env.yaml" in result.exception.message, command
