"""SIGKILL of `splitter run` right after an action in every step that acts (mid-step where it has several), then
resume: the same end topology, the data unchanged, every step done; rollback refuses past the point of no return."""

from __future__ import annotations

import json
import signal

import pytest

from splitter.lab.lab import Lab
from tests.helpers import assert_split_topology, counts, rs1_client, rs2_client, run_cli, state_file

pytestmark = pytest.mark.mongod


CRASH_POINTS = [  # SIGKILL right after this action, in every step that acts, mid-step where it has several
    "prepare-arbiters:playbook:1",
    "add-arbiter-rs1:setDefaultRWConcern:1",
    "add-arbiter-rs1:playbook mongod_start.yml:1",
    "deploy-client-v1:replSetReconfig:1",
    "stop-moving-nodes:shutdown:1",
    "remove-moving-nodes:replSetReconfig:1",
    "start-standalone:playbook:1",
    "rewrite-replset-config:write local.system.replset:1",
    "stop-standalone:shutdown:1",
    "start-rs2:playbook mongod_start.yml:1",
    "start-arbiter-rs2:playbook mongod_start.yml:1",
]


@pytest.mark.parametrize("crash_points", [CRASH_POINTS])
def test_sigkill_inside_steps_then_resume(fresh_lab: Lab, crash_points: list[str]) -> None:
    config = str(fresh_lab.layout.config_path)
    before = counts(rs1_client(fresh_lab))
    for point in crash_points:
        result = run_cli("run", "-c", config, "--yes", env={"SPLITTER_CRASH_AFTER": point})
        assert result.returncode == -signal.SIGKILL, (point, result.stdout, result.stderr)
        state = json.loads(state_file(fresh_lab).read_text())
        assert state["steps"][point.split(":")[0]]["state"] == "running", point
        if point.startswith("rewrite-replset-config"):
            refused = run_cli("rollback", "-c", config)
            assert refused.returncode == 1 and "only goes forward" in refused.stderr, refused.stderr
    result = run_cli("run", "-c", config, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already complete" in result.stdout or "resuming" in result.stdout
    assert_split_topology(fresh_lab)
    assert counts(rs1_client(fresh_lab)) == before
    assert counts(rs2_client(fresh_lab)) == before
    status = json.loads(run_cli("status", "-c", config, "--json").stdout)
    assert {s["state"] for s in status["steps"]} == {"done"}
    assert status["split_optime"]
