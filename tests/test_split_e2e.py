"""The split on real mongod: plan is read-only, --until/--step, Ctrl-C inside a step, rollback. (The whole split
under an application, then cleanup: test_story.py; SIGKILL inside steps: test_split_sigkill.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from splitter.lab.lab import Lab
from tests.helpers import (
    counts,
    fingerprint,
    rs1_client,
    run_cli,
    state_file,
)

pytestmark = pytest.mark.mongod


def test_plan_changes_nothing_and_lists_every_step(shared_lab: Lab) -> None:
    before = fingerprint(shared_lab)
    result = run_cli("plan", "-c", str(shared_lab.layout.config_path), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [s["id"] for s in plan] == [
        "preflight", "prepare-arbiters", "add-arbiter-rs1", "deploy-client-v1", "stop-moving-nodes",
        "remove-moving-nodes", "start-standalone", "rewrite-replset-config", "stop-standalone", "start-rs2",
        "start-arbiter-rs2", "catch-up", "deploy-client-v2"]
    assert all({"id", "title", "actions", "reversible"} <= set(s) for s in plan)
    reversible = {s["id"]: s["reversible"] for s in plan}
    assert reversible["start-standalone"] and not reversible["rewrite-replset-config"]
    assert any("setDefaultRWConcern" in a for a in plan[2]["actions"])
    assert fingerprint(shared_lab) == before
    assert not state_file(shared_lab).exists() or "done" not in state_file(shared_lab).read_text()


def test_until_step_and_rollback_after_remove_moving_nodes(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    before = counts(rs1_client(fresh_lab))
    original = fingerprint(fresh_lab)

    declined = run_cli("run", "-c", config, "--step", stdin="n\n")
    assert declined.returncode == 0, declined.stderr
    assert "stopped before preflight" in declined.stdout + declined.stderr
    assert fingerprint(fresh_lab) == original

    result = run_cli("run", "-c", config, "--yes", "--until", "remove-moving-nodes")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {s["id"]: s["state"] for s in json.loads(run_cli("status", "-c", config, "--json").stdout)["steps"]}
    assert steps["remove-moving-nodes"] == "done" and steps["start-standalone"] == "pending"

    # Ctrl-C inside start-standalone: exit 130, the checkpoint says where it stopped, rollback still works.
    with (fresh_lab.layout.root / "interrupted.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config, "--yes"], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and json.loads(state_file(fresh_lab).read_text())["steps"].get(
            "start-standalone", {}).get("state") != "running":
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (fresh_lab.layout.root / "interrupted.log").read_text()
    record = json.loads(state_file(fresh_lab).read_text())["steps"]["start-standalone"]
    assert record["state"] == "running" and record["error"] == "interrupted (Ctrl-C)"

    result = run_cli("rollback", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    version, _term, members = fingerprint(fresh_lab)
    assert sorted(state for _host, state in members) == ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]
    assert [h for h, _ in members] == [h for h, _ in original[2]]
    assert version > original[0]
    assert counts(rs1_client(fresh_lab)) == before
    with rs1_client(fresh_lab) as client:
        conf = client.admin.command("replSetGetConfig")["config"]
    assert all(m["votes"] == 1 and m["priority"] == 1 and not m.get("arbiterOnly") for m in conf["members"])
