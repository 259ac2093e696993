"""Zero-loss cutover on real mongod: every acknowledged write of rs2's half made on rs1 after the split
reaches rs2 (also across a SIGKILL during catch-up), `verify` passes, and a tampered document is named."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splitter.lab.lab import Lab
from splitter.waiting import wait_until
from tests.helpers import MixedWriter, half_snapshot, rs1_client, rs2_client, run_cli

pytestmark = pytest.mark.mongod
COLLECTIONS = ("users", "events", "sessions")


class Run:
    """`splitter run` in the background, waiting at the gate; output goes to a file (a full pipe would block it)."""

    def __init__(self, config: str) -> None:
        self.log = Path(config).parent / f"run-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config], stdout=out,
                                         stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log.read_text()


def _status(config: str) -> dict:
    return json.loads(run_cli("status", "-c", config, "--json").stdout)


def _wait_for(what: str, check, timeout: float = 300) -> None:
    wait_until(what, check, timeout=timeout)


def _applied(config: str) -> int:
    catch_up = _status(config).get("catch_up") or {}
    return (catch_up.get("counters") or {}).get("applied", 0)


def _assert_rs2_half_equal(lab: Lab) -> int:
    compared = 0
    for name in COLLECTIONS:
        on_rs1 = half_snapshot(rs1_client(lab), name, 1)
        on_rs2 = half_snapshot(rs2_client(lab), name, 1)
        assert on_rs1.keys() == on_rs2.keys(), (name, set(on_rs1) ^ set(on_rs2))
        assert on_rs1 == on_rs2, name
        compared += len(on_rs1)
    return compared


def _split_with_writer(lab: Lab, kill_during_catch_up: bool) -> MixedWriter:
    config = str(lab.layout.config_path)
    writer = MixedWriter(rs1_client(lab)).start()
    result = run_cli("run", "-c", config, "--yes", "--until", "catch-up")
    assert result.returncode == 0, result.stdout + result.stderr
    run = Run(config)
    try:
        _wait_for("the deploy-client-v2 gate", lambda: _status(config)["waiting_gate"] == "deploy-client-v2")
        first = _applied(config)
        _wait_for("the background catch-up to apply writes", lambda: _applied(config) > first + 20)
        if kill_during_catch_up:
            run.proc.send_signal(signal.SIGKILL)
            assert run.proc.wait(timeout=30) == -signal.SIGKILL
            run = Run(config)
            _wait_for("the gate again", lambda: _status(config)["waiting_gate"] == "deploy-client-v2")
            again = _applied(config)
            _wait_for("the resumed catch-up", lambda: _applied(config) > again + 20)
        writer.stop()  # the old client is gone once client v2 is deployed
        assert run_cli("confirm", "-c", config, "deploy-client-v2").returncode == 0
        assert run.proc.wait(timeout=600) == 0, run.output()
    finally:
        writer.stop()
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    assert writer.failures == [], writer.failures[:5]
    assert writer.acknowledged > 200
    return writer


def test_every_write_of_rs2s_half_reaches_rs2_and_verify_passes(fresh_lab: Lab) -> None:
    writer = _split_with_writer(fresh_lab, kill_during_catch_up=False)
    assert _assert_rs2_half_equal(fresh_lab) > 0
    moved_or_new = sum(1 for ids in writer.touched.values() for i in ids if str(i).startswith("w"))
    assert moved_or_new > 50
    status = _status(str(fresh_lab.layout.config_path))
    assert status["cutover"] and status["cutover"]["verified"]
    result = run_cli("verify", "-c", str(fresh_lab.layout.config_path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["halves"] == ["rs2"] and len(report["collections"]) == 3
    assert all(r["ok"] for r in report["collections"])

    # A deliberately altered document on rs2 is found and named.
    victim = next(iter(half_snapshot(rs2_client(fresh_lab), "events", 1)))
    rs2_client(fresh_lab).app.events.update_one({"_id": victim}, {"$set": {"tampered": True}})
    result = run_cli("verify", "-c", str(fresh_lab.layout.config_path), "--samples", "3")
    assert result.returncode == 3, result.stderr  # differ, not "could not check"
    assert str(victim) in result.stdout + result.stderr and "app.events" in result.stderr


def test_sigkill_during_catch_up_then_resume_loses_nothing(fresh_lab: Lab) -> None:
    _split_with_writer(fresh_lab, kill_during_catch_up=True)
    assert _assert_rs2_half_equal(fresh_lab) > 0
    result = run_cli("verify", "-c", str(fresh_lab.layout.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
