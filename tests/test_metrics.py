"""The Prometheus textfile: parsed by prometheus_client's own parser, seeded from the checkpoint, updated by events,
written atomically; during a real `splitter run` its values match `status --json`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from splitter.events import EventBus, EventType
from splitter.lab.lab import Lab
from splitter.observe.metrics import FAMILIES, LIVE_STEP_STATES, MetricsFile, RunMetrics
from splitter.store.checkpoint import RunState, StepRecord
from splitter.store.records import CutoverRecord, GatePass
from splitter.waiting import wait_until
from tests.helpers import Writer, rs1_client, run_cli

GATES = {"preflight": None, "deploy-client-v1": "deploy-client-v1", "catch-up": None,
         "deploy-client-v2": "deploy-client-v2"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a textfile, by name and labels, as prometheus_client's parser reads it."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def step_states(found: dict) -> dict[str, str]:
    return {dict(labels)["step"]: dict(labels)["state"] for (name, labels), v in found.items()
            if name == "splitter_step_state" and v == 1}


def test_every_family_parses_with_its_type_and_values() -> None:
    bus, metrics = EventBus(), RunMetrics().seed(RunState(), GATES)
    bus.subscribe(metrics.update)
    bus.emit(EventType.COMMAND_STARTED, "started", command="run")
    with bus.in_step("preflight"):
        bus.emit(EventType.STEP_STARTED, "[preflight] ...")
        bus.emit(EventType.RETRY, "retrying", what="hello", attempt=1)
        bus.emit(EventType.WARNING, "short oplog", level="warning")
        bus.emit(EventType.ACTION, "reconfig", what="replSetReconfig", result="ok", seconds=0.2)
        bus.emit(EventType.ACTION, "reconfig", what="replSetReconfig", result="error", seconds=0.2)
        bus.emit(EventType.HOOK, "hook ran", hook="on-step-done", result="ok", exit_code=0)
        bus.emit(EventType.STEP_DONE, "[preflight] done", seconds=12.25, attempts=1)
    with bus.in_step("deploy-client-v1"):
        bus.emit(EventType.STEP_STARTED, "[deploy-client-v1] ...")
        bus.emit(EventType.GATE_WAITING, "GATE deploy-client-v1", gate="deploy-client-v1")
    with bus.in_step("catch-up"):
        bus.emit(EventType.STEP_FAILED, "step catch-up: boom", level="error", error="boom")
    bus.emit(EventType.CATCHUP, "catch-up rs2", stream="rs2", lag_seconds=1.5, lag_events=40, rate_per_second=900.0,
             source_rate_per_second=850.0, drain_estimate_seconds=0.05, counters={"events": 5000, "applied": 4800})
    for kind, extra in ((EventType.CLEANUP_CHUNK, {"deleted": 1000, "kept": 3, "rate_per_second": 2500.0}),
                        (EventType.CLEANUP_WAIT, {"kind": "lag", "reason": "node3 lags 12s", "seconds": 2.0}),
                        (EventType.CLEANUP_CHUNK, {"deleted": 2000, "kept": 3}),
                        (EventType.CLEANUP_DONE, {"deleted": 2000, "kept": 3, "stop_reason": "walk complete"})):
        bus.emit(kind, kind.value, set="rs1", **extra)
    bus.emit(EventType.VERIFY_PROGRESS, "verify", ranges_done=3, ranges_total=8, docs=60000, eta_seconds=12.0)
    bus.emit(EventType.VERIFY_DONE, "verify ok", ok=True, summary="equal")
    bus.emit(EventType.CUTOVER, "switched", state="switched", epoch=2)
    bus.emit(EventType.COMMAND_FINISHED, "finished", command="run", exit_code=0, seconds=30.0)
    text = metrics.render()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert {name.removesuffix("_total") if kind == "counter" else name for name, (kind, _) in FAMILIES.items()} \
        == set(families)
    assert all(families[name.removesuffix("_total")] == "counter" for name, (kind, _) in FAMILIES.items()
               if kind == "counter")
    found = samples(text)
    assert step_states(found) == {"preflight": "done", "deploy-client-v1": "waiting", "catch-up": "failed",
                                  "deploy-client-v2": "pending"}
    expected = {
        ("splitter_step_duration_seconds", (("step", "preflight"),)): 12.25,
        ("splitter_step_failures_total", (("step", "catch-up"),)): 1,
        ("splitter_gate_waiting", (("gate", "deploy-client-v1"),)): 1,
        ("splitter_gate_passed", (("gate", "deploy-client-v1"),)): 0,
        ("splitter_actions_total", (("result", "ok"),)): 1, ("splitter_actions_total", (("result", "error"),)): 1,
        ("splitter_retries_total", ()): 1, ("splitter_warnings_total", ()): 1,
        ("splitter_hook_runs_total", (("hook", "on-step-done"), ("result", "ok"))): 1,
        ("splitter_catchup_lag_seconds", (("stream", "rs2"),)): 1.5,
        ("splitter_catchup_lag_events", (("stream", "rs2"),)): 40,
        ("splitter_catchup_events_per_second", (("stream", "rs2"),)): 900,
        ("splitter_catchup_source_events_per_second", (("stream", "rs2"),)): 850,
        ("splitter_catchup_drain_estimate_seconds", (("stream", "rs2"),)): 0.05,
        ("splitter_catchup_events_total", (("stream", "rs2"),)): 5000,
        ("splitter_catchup_applied_total", (("stream", "rs2"),)): 4800,
        ("splitter_cleanup_deleted_total", (("set", "rs1"),)): 2000,
        ("splitter_cleanup_kept_total", (("set", "rs1"),)): 3,
        ("splitter_cleanup_deleted_per_second", (("set", "rs1"),)): 2500,
        ("splitter_cleanup_waiting", (("kind", "lag"), ("set", "rs1"))): 0,  # waiting ended with the next chunk
        ("splitter_cleanup_waits_total", (("kind", "lag"), ("set", "rs1"))): 1,
        ("splitter_cleanup_done", (("set", "rs1"),)): 1,
        ("splitter_verify_ranges_done", ()): 3, ("splitter_verify_ranges_total", ()): 8,
        ("splitter_verify_docs_total", ()): 60000, ("splitter_verify_eta_seconds", ()): 12,
        ("splitter_verify_ok", ()): 1,
        ("splitter_cutover_state", (("state", "switched"),)): 1, ("splitter_cutover_epoch", ()): 2,
        ("splitter_command_running", (("command", "run"),)): 0,
        ("splitter_command_exit_code", (("command", "run"),)): 0,
    }
    assert {key: value(found, key[0], **dict(key[1])) for key in expected} == expected
    assert value(found, "splitter_last_event_timestamp_seconds") == pytest.approx(time.time(), abs=60)


def test_seeded_from_the_checkpoint_a_resumed_run_shows_earlier_steps() -> None:
    state = RunState(steps={"preflight": StepRecord(state="done", attempts=1),
                            "deploy-client-v1": StepRecord(state="done"), "catch-up": StepRecord(state="failed")},
                     gates={"deploy-client-v1": GatePass(at="2026-01-01T00:00:00+00:00", by="--yes")},
                     waiting_gate="deploy-client-v2", cutover=CutoverRecord(state="final", epoch=1, owner="rs2"))
    found = samples(RunMetrics().seed(state, GATES).render())
    assert step_states(found) == {"preflight": "done", "deploy-client-v1": "done", "catch-up": "failed",
                                  "deploy-client-v2": "waiting"}
    assert sum(v for (name, labels), v in found.items() if name == "splitter_step_state") == len(GATES)
    assert len([k for k in found if k[0] == "splitter_step_state"]) == len(GATES) * len(LIVE_STEP_STATES)
    assert value(found, "splitter_gate_passed", gate="deploy-client-v1") == 1
    assert value(found, "splitter_gate_waiting", gate="deploy-client-v2") == 1
    assert value(found, "splitter_cutover_state", state="final") == 1


def test_label_values_are_escaped() -> None:
    metrics = RunMetrics()
    metrics.set("splitter_hook_runs_total", 1, hook='odd "name"\\with\nnewline', result="ok")
    assert value(samples(metrics.render()), "splitter_hook_runs_total", hook='odd "name"\\with\nnewline',
                 result="ok") == 1


def test_the_file_is_replaced_atomically_and_readable_by_node_exporter(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "splitter.prom"
    bus = EventBus()
    MetricsFile(path, RunMetrics().seed(RunState(), GATES), interval=0.2).attach(bus)
    assert value(samples(path.read_text()), "splitter_step_state", step="preflight", state="pending") == 1
    with bus.in_step("preflight"):
        bus.emit(EventType.STEP_STARTED, "[preflight] ...")
    wait_until("the flush", lambda: "running" in str(step_states(samples(path.read_text()))), timeout=5,
               interval=0.05)
    with bus.in_step("preflight"):
        bus.emit(EventType.STEP_DONE, "[preflight] done", seconds=1.0)
    bus.close()  # the last write happens at close, whatever the interval
    assert step_states(samples(path.read_text()))["preflight"] == "done"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in path.parent.iterdir()) == ["splitter.prom"]  # no temporary file left


@pytest.mark.mongod
def test_metrics_match_status_during_a_run(fresh_lab: Lab, tmp_path: Path) -> None:
    """A real `splitter run --metrics-file` waits at deploy-client-v1 while an application writes; the file and
    `status --json` agree on every step's state and on the gates; Ctrl-C then leaves exit code 130 in the file."""
    config = str(fresh_lab.layout.config_path)
    metrics_path = tmp_path / "splitter.prom"
    writer = Writer(rs1_client(fresh_lab)).start()
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen([sys.executable, "-m", "splitter", "--metrics-file", str(metrics_path), "run", "-c",
                            config], stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until("the metrics file to show the gate", lambda: metrics_path.exists() and value(
            samples(metrics_path.read_text()), "splitter_gate_waiting", gate="deploy-client-v1") == 1, timeout=600)
        status = json.loads(run_cli("status", "-c", config, "--json").stdout)
        found = samples(metrics_path.read_text())
        assert step_states(found) == {s["id"]: s["state"] for s in status["steps"]}
        assert status["steps"][3]["state"] == "waiting" and status["waiting_gate"] == "deploy-client-v1"
        for gate, info in status["gates"].items():
            assert value(found, "splitter_gate_waiting", gate=gate) == (info["state"] == "waiting")
            assert value(found, "splitter_gate_passed", gate=gate) == (info["state"] == "passed")
        assert status["run"]["alive"] and status["run"]["holder"]["pid"] == run.pid
        assert value(found, "splitter_command_running", command="run") == 1
        assert value(found, "splitter_actions_total", result="ok") >= 3  # setDefaultRWConcern, start, reconfig
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130
    finally:
        if run.poll() is None:
            run.kill()
        log.close()
        writer.stop()
    found = samples(metrics_path.read_text())
    assert value(found, "splitter_command_running", command="run") == 0
    assert value(found, "splitter_command_exit_code", command="run") == 130
    after = json.loads(run_cli("status", "-c", config, "--json").stdout)
    assert step_states(found) == {s["id"]: s["state"] for s in after["steps"]}
    assert not after["run"]["alive"] and "stopped while waiting at gate deploy-client-v1" in after["next"]["sentence"]
    assert writer.failures == [] and writer.acknowledged
    stored = {d["_id"] for d in rs1_client(fresh_lab).app.writer.find({}, {"_id": 1})}
    assert set(writer.acknowledged) <= stored
    assert os.stat(metrics_path).st_mode & 0o777 == 0o644
