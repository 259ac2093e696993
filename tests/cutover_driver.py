"""Drives a lab through the cutover from a test (or by hand): `run` in the background, the lab application
writing both halves through the routing document, requests from "another terminal"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from splitter.lab.app import LabApp
from splitter.lab.lab import Lab
from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID
from splitter.waiting import wait_until
from tests.helpers import rs1_client, rs2_client, run_cli


class Run:
    """`splitter run` in the background; output goes to a file (a full pipe would block it)."""

    def __init__(self, config: str, *args: str, pause_at: str | None = None) -> None:
        self.log = Path(config).parent / f"run-{time.monotonic_ns()}.log"
        env = {**os.environ}
        env.pop("SPLITTER_TEST_PAUSE_AT", None)
        if pause_at:
            env["SPLITTER_TEST_PAUSE_AT"] = pause_at
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config, *args], stdout=out,
                                         stderr=subprocess.STDOUT, text=True, env=env)

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float = 900) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


def app_for(lab: Lab, **kwargs: Any) -> LabApp:
    return LabApp({"rs1": rs1_client(lab), "rs2": rs2_client(lab)}, "rs1", **kwargs)


def state(lab: Lab) -> dict:
    path = lab.layout.root / "state" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def cutover(lab: Lab) -> dict:
    return state(lab).get("cutover") or {}


def last_switch(lab: Lab) -> dict:
    switches = cutover(lab).get("switches") or []
    return switches[-1] if switches else {}


def wait_for(what: str, check, timeout: float = 2400) -> None:
    wait_until(what, check, timeout=timeout, interval=0.5)


def wait_gate(lab: Lab, gate: str = "deploy-client-v2", run: Run | None = None) -> None:
    def waiting() -> bool:
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"run exited {run.proc.returncode}: {run.output()[-3000:]}")
        return state(lab).get("waiting_gate") == gate
    wait_for(f"gate {gate}", waiting)


def wait_switch(lab: Lab, phase: str, epoch: int, run: Run | None = None) -> None:
    def reached() -> bool:
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"run exited {run.proc.returncode}: {run.output()[-3000:]}")
        sw = last_switch(lab)
        order = ["started", "fenced", "drained", "published", "streaming", "verified"]
        return sw.get("epoch") == epoch and order.index(sw.get("phase", "started")) >= order.index(phase)
    wait_for(f"switch epoch {epoch} at {phase}", reached)


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=timeout)


def confirm(config: str, gate: str = "deploy-client-v2") -> None:
    result = cli("confirm", "-c", config, gate)
    assert result.returncode == 0, result.stdout + result.stderr


def until_catch_up(lab: Lab) -> None:
    result = cli("run", "-c", str(lab.layout.config_path), "--yes", "--until", "catch-up", timeout=2400)
    assert result.returncode == 0, result.stdout + result.stderr


def check_app(app: LabApp) -> None:
    """The application never failed, wrote enough, and every acknowledged write is on its owner, last value."""
    assert app.failures == [], app.failures[:5]
    assert app.acknowledged > 200
    result = app.check()
    assert result.ok, result.problems[:10]
    assert result.checked > 50 and result.deleted_checked > 5


def routing_docs(lab: Lab) -> list[dict]:
    """The published routing document on rs1 and on rs2."""
    return [c[DATABASE][COLLECTION].find_one({"_id": DOCUMENT_ID}) for c in (rs1_client(lab), rs2_client(lab))]


def finish(lab: Lab, run: Run) -> None:
    """`finalize` from another terminal; the run waiting for it exits 0."""
    result = cli("finalize", "-c", str(lab.layout.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.wait(600) == 0, run.output()[-4000:]


def paused(run: Run, phase: str) -> None:
    """Wait until the run stopped at `phase` (SPLITTER_TEST_PAUSE_AT), so that the test can SIGKILL it there."""
    def there() -> bool:
        if run.proc.poll() is not None:
            raise AssertionError(f"run exited {run.proc.returncode}: {run.output()[-3000:]}")
        return f"paused at {phase}" in run.output()
    wait_for(f"run paused at {phase}", there)
