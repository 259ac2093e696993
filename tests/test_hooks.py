"""Hooks: the operator's programs get the event (environment + JSON on stdin); `before-*` hooks veto, `on-*` hooks
never hold the work up; a failing `before-step` hook stops a real `splitter run` with exit 1 and its output."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from splitter.events import EventBus, EventType, Recorder
from splitter.lab.lab import Lab
from splitter.observe.hooks import HOOKS, HookFailed, HookRunner, is_veto
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles
from tests.helpers import config_copy, fingerprint, run_cli

CONTEXT = {"command": "run", "config": "/etc/splitter/split.yaml", "state_dir": "/var/lib/splitter",
           "source_set": "rs1", "target_set": "rs2"}


def hook(directory: Path, name: str, body: str, executable: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(stat.S_IRWXU if executable else stat.S_IRUSR | stat.S_IWUSR)
    return path


def runner(tmp_path: Path, bus: EventBus, **kwargs: object) -> HookRunner:
    options: dict = {"timeout": 5.0, "log_path": tmp_path / "state" / "hooks.log", "context": CONTEXT,
                     "hidden_env": ["SPLITTER_TEST_PASSWORD"], **kwargs}
    return HookRunner(tmp_path / "hooks", **options).attach(bus)


def test_a_hook_receives_the_event_as_environment_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLITTER_TEST_PASSWORD", "hunter2")  # named in credentials.password_env: never passed on
    out = tmp_path / "received"
    hook(tmp_path / "hooks", "on-step-done", f"env > {out}.env; cat > {out}.json; echo said something")
    bus, recorder = EventBus(), Recorder()
    bus.subscribe(recorder)
    runner(tmp_path, bus)
    with bus.in_step("add-arbiter-rs1"):
        bus.emit(EventType.STEP_DONE, "[add-arbiter-rs1] done", seconds=12.5, attempts=2)
    bus.close()  # the command's end flushes the queue
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines() if "=" in line)
    assert {k: env[k] for k in ("SPLITTER_HOOK", "SPLITTER_EVENT", "SPLITTER_STEP", "SPLITTER_SECONDS",
                                "SPLITTER_ATTEMPTS", "SPLITTER_CONFIG", "SPLITTER_TARGET_SET")} == {
        "SPLITTER_HOOK": "on-step-done", "SPLITTER_EVENT": "step.done", "SPLITTER_STEP": "add-arbiter-rs1",
        "SPLITTER_SECONDS": "12.5", "SPLITTER_ATTEMPTS": "2", "SPLITTER_CONFIG": "/etc/splitter/split.yaml",
        "SPLITTER_TARGET_SET": "rs2"}
    assert env["SPLITTER_MESSAGE"] == "[add-arbiter-rs1] done" and "PATH" in env
    assert "SPLITTER_TEST_PASSWORD" not in env and "hunter2" not in Path(f"{out}.env").read_text()
    stdin = json.loads(Path(f"{out}.json").read_text())
    assert stdin == {**stdin, "event": "step.done", "step": "add-arbiter-rs1", "seconds": 12.5, "hook": "on-step-done",
                     "state_dir": "/var/lib/splitter"}
    log = (tmp_path / "state" / "hooks.log").read_text()
    assert "on-step-done for step.done (step add-arbiter-rs1)" in log and "exit 0" in log and "said something" in log
    assert oct((tmp_path / "state" / "hooks.log").stat().st_mode & 0o777) == "0o600"
    [ran] = recorder.of(EventType.HOOK)
    assert ran.data == {**ran.data, "hook": "on-step-done", "exit_code": 0, "result": "ok", "for_event": "step.done"}


def test_on_hooks_never_hold_up_the_emitter_and_the_flush_is_bounded(tmp_path: Path) -> None:
    hook(tmp_path / "hooks", "on-gate-waiting", "sleep 30")
    bus, recorder = EventBus(), Recorder()
    bus.subscribe(recorder)
    runner(tmp_path, bus, timeout=1.0, flush_timeout=3.0)
    started = time.monotonic()
    bus.emit(EventType.GATE_WAITING, "GATE deploy-client-v1: ...", gate="deploy-client-v1")
    assert time.monotonic() - started < 0.5
    bus.close()  # the hook is killed after its 1 s timeout; the flush waits for that, not for 30 s
    assert time.monotonic() - started < 3.5
    [ran] = recorder.of(EventType.HOOK)
    assert ran.data["exit_code"] is None and ran.data["result"] == "failed" and ran.level == "warning"
    assert "timed out" in (tmp_path / "state" / "hooks.log").read_text()


def test_the_flush_at_exit_abandons_what_does_not_fit_its_bound(tmp_path: Path) -> None:
    hook(tmp_path / "hooks", "on-retry", "sleep 5")
    bus = EventBus()
    runner(tmp_path, bus, timeout=10.0, flush_timeout=0.3)
    for attempt in range(3):
        bus.emit(EventType.RETRY, "retrying", attempt=attempt)
    started = time.monotonic()
    bus.close()
    assert time.monotonic() - started < 1.0


def test_a_timed_out_hook_loses_its_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    hook(tmp_path / "hooks", "before-cutover", f"sleep 60 & echo $! > {pid_file}; wait")
    bus = EventBus()
    runner(tmp_path, bus, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HookFailed, match="timed out"):
        bus.emit(EventType.BEFORE_CUTOVER, "the fence goes up next")
    assert time.monotonic() - started < 3  # its child held the output pipe: killing only the shell waits 60 s
    status = Path(f"/proc/{int(pid_file.read_text())}/status")
    time.sleep(0.2)
    # gone, or a zombie waiting for init to reap it: either way no longer sleeping
    assert not status.exists() or "State:\tZ" in status.read_text()


def test_a_failing_before_hook_vetoes_with_its_output(tmp_path: Path) -> None:
    hook(tmp_path / "hooks", "before-cutover", "echo 'the load balancer is not ready'; exit 3")
    bus = EventBus()
    runner(tmp_path, bus)
    with pytest.raises(HookFailed) as failure:
        bus.emit(EventType.BEFORE_CUTOVER, "the fence goes up next")
    assert failure.value.exit_code == 1
    assert "before-cutover" in failure.value.message and "exit 3" in failure.value.message
    assert "the load balancer is not ready" in failure.value.message
    assert "splitter run -c /etc/splitter/split.yaml" in (failure.value.hint or "")


def test_hook_names_one_table_and_several_programs_in_name_order(tmp_path: Path) -> None:
    out = tmp_path / "order"
    for name in ("on-failure", "on-failure-page", "on-failure.slack", "on-failurex", "on-failure_other"):
        hook(tmp_path / "hooks", name, f"echo {name} >> {out}")
    hook(tmp_path / "hooks", "on-failure-not-executable", "true", executable=False)
    bus, recorder = EventBus(), Recorder()
    bus.subscribe(recorder)
    runner(tmp_path, bus)
    bus.emit(EventType.STEP_FAILED, "step x: failed", level="error", error="boom", hint="fix it")
    bus.emit(EventType.STEP_FAILED, "step x: failed again", level="error", error="boom", hint="fix it")
    bus.close()
    assert out.read_text().split() == ["on-failure", "on-failure-page", "on-failure.slack"] * 2
    assert [e.message for e in recorder.of(EventType.WARNING)] == [
        f"hook {tmp_path / 'hooks' / 'on-failure-not-executable'} is not executable: not run (chmod +x it to use it)"]
    assert len(set(HOOKS.values())) == len(HOOKS)
    assert {h for h in HOOKS.values() if is_veto(h)} == {"before-step", "before-cutover"}


@pytest.mark.mongod
def test_a_failing_before_step_hook_stops_the_run_with_exit_1_and_its_output(shared_lab: Lab, tmp_path: Path) -> None:
    """Preflight runs (read-only) against the lab; the hook refuses prepare-arbiters: exit 1, its output shown,
    nothing of that step done, the lab untouched, and the run resumes once the hook agrees."""
    hook(tmp_path / "hooks", "before-step", 'if [ "$SPLITTER_STEP" = prepare-arbiters ]; then\n'
         '  echo "change freeze until 18:00 (ticket OPS-1)"; exit 1\nfi')
    config = config_copy(shared_lab, tmp_path, hooks={"dir": str(tmp_path / "hooks"), "timeout": "10s"})
    before = fingerprint(shared_lab)
    result = run_cli("--log-format", "json", "run", "-c", str(config), "--until", "prepare-arbiters")
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stderr.strip().splitlines()]  # every stderr line is JSON
    [error] = [e for e in events if e["event"] == "error"]
    assert error["exit_code"] == 1
    assert "hook before-step" in error["message"] and "change freeze until 18:00 (ticket OPS-1)" in error["message"]
    assert f"splitter run -c {config}" in error["hint"]
    assert {"step.started", "step.done", "hook", "command.finished"} <= {e["event"] for e in events}
    state = StateStore(StateFiles(tmp_path / "state")).load()
    assert state.step("preflight").state == "done" and state.step("prepare-arbiters").state == "pending"
    assert fingerprint(shared_lab) == before
    assert "change freeze" in (tmp_path / "state" / "hooks.log").read_text()
    audit = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [e["exit_code"] for e in audit if e["event"] == "command.finished"] == [1]


def test_hooks_dir_that_is_missing_is_bad_input(shared_lab: Lab, tmp_path: Path) -> None:
    config = config_copy(shared_lab, tmp_path, hooks={"dir": "no-such-dir"})
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 2
    assert "hooks.dir" in result.stderr and "not a directory" in result.stderr
    assert not (tmp_path / "state").exists()
