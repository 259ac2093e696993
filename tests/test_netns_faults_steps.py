"""The split over SSH on the netns lab, and faults in the steps that act on hosts (one lab, scenarios in order):

- SSH to node3 refused at preflight -> exit 1 or 2 naming node3, the cluster untouched;
- node3 partitioned (from every host and the orchestrator) during stop-moving-nodes, and again during
  rewrite-replset-config -> the step fails naming node3; after heal `run` resumes and the split completes
  under the writer, gates confirmed with `splitter confirm`, with the end checks: topology read from each host's
  own address, every mongod inside its host's namespace (started there over SSH), both halves, 0 lost writes,
  `verify` exit 0.
"""

from __future__ import annotations

import json

import pytest

from splitter.lab.lab import Lab
from splitter.lab.layout import ARBITERS, DATA_NODES
from splitter.lab.netns_faults import Faults
from tests.helpers import Writer, fingerprint, rs1_client, run_cli, state_file
from tests.netns_run import Run, assert_halves, assert_topology_from_each_host, confirm, split_with_gates, wait_gate

pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]  # a split over SSH takes minutes on a busy box

SCENARIO: dict[str, object] = {}


def _steps(lab: Lab) -> dict[str, str]:
    if not state_file(lab).exists():
        return {}
    return {k: v["state"] for k, v in json.loads(state_file(lab).read_text())["steps"].items()}


def _run(lab: Lab, until: str):
    return run_cli("run", "-c", str(lab.layout.config_path), "--until", until)


def _fails_while_node3_is_partitioned(lab: Lab, step: str) -> None:
    """`run --until STEP` with node3 cut from everyone: exit 1, the step named with node3 (by name or address),
    the step not done."""
    with Faults(lab).partitioned("node3"):
        failed = _run(lab, step)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    node3 = lab.layout.host("node3").address
    assert step in failed.stderr and ("node3" in failed.stderr or node3 in failed.stderr), failed.stderr
    assert _steps(lab)[step] != "done"


def test_ssh_refused_at_preflight_names_node3_and_touches_nothing(netns_lab: Lab) -> None:
    inventory = netns_lab.layout.inventory_path.read_text()
    assert "ansible_connection: ssh" in inventory and "splitter_lab: true" in inventory
    before = fingerprint(netns_lab)
    faults = Faults(netns_lab)
    faults.stop_ssh("node3")
    try:
        result = _run(netns_lab, "preflight")
    finally:
        faults.start_ssh("node3")
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "node3" in result.stderr, result.stderr
    assert fingerprint(netns_lab) == before
    assert _steps(netns_lab).get("preflight") != "done"


def test_node3_partitioned_in_stop_moving_nodes_and_in_rewrite_then_resumes(netns_lab: Lab) -> None:
    config = str(netns_lab.layout.config_path)
    writer = Writer(rs1_client(netns_lab)).start()
    SCENARIO["writer"] = writer
    through_v1 = Run(config, "--until", "deploy-client-v1")
    wait_gate(config, "deploy-client-v1", through_v1)
    confirm(config, "deploy-client-v1")  # `confirm` is only taken while a run waits at the gate
    assert through_v1.wait() == 0, through_v1.output()

    _fails_while_node3_is_partitioned(netns_lab, "stop-moving-nodes")

    result = _run(netns_lab, "start-standalone")
    assert result.returncode == 0, result.stdout + result.stderr
    _fails_while_node3_is_partitioned(netns_lab, "rewrite-replset-config")

    result = _run(netns_lab, "start-arbiter-rs2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _steps(netns_lab)["start-arbiter-rs2"] == "done"


def test_the_split_then_completes_with_nothing_lost(netns_lab: Lab) -> None:
    writer = SCENARIO.get("writer")
    assert isinstance(writer, Writer), "needs the scenario before it"
    _writer, run = split_with_gates(netns_lab, writer=writer, v1_passed=True)
    assert "split complete" in run.output()
    assert writer.failures == [], writer.failures[:5]  # node3's partitions never reach rs1's writes
    assert_topology_from_each_host(netns_lab)
    assert_halves(netns_lab, writer)
    # Each mongod runs inside its host's namespace: it was started there over SSH.
    for name in DATA_NODES + ARBITERS:
        pids = netns_lab.plan.namespace_pids(name)
        assert any(p.pid in pids for p in netns_lab.processes() if p.name == name and p.pid), name
    # verify after finalize: the loaded collections are equal; the app's ledger differs only because the app kept
    # writing rs2's users on rs2 after the switch (rs1's copy of that half is frozen there until cleanup).
    verify = run_cli("verify", "-c", str(netns_lab.layout.config_path), "--json")
    report = json.loads(verify.stdout.strip().splitlines()[-1])
    by_namespace = {c["namespace"]: c["ok"] for c in report["collections"]}
    assert {ns for ns, ok in by_namespace.items() if not ok} <= {"app.ledger"}, verify.stdout + verify.stderr
    assert all(by_namespace[f"app.{c}"] for c in ("users", "events", "sessions")), by_namespace
