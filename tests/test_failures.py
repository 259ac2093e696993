"""Operational failures on real mongod: a node killed during the split makes the step fail with the step,
the cause and the next command (exit 1); once the node is back, `run` completes. Preflight guards refuse
to start with the numbers (exit 2, cluster unchanged)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from splitter.cluster.lag import LagReader
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.lab.lab import Lab
from splitter.lab.processes import mongod_alive, read_pid
from tests.helpers import fingerprint, run_cli

pytestmark = pytest.mark.mongod


def test_mongod_killed_during_the_split_then_resume(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    assert run_cli("run", "-c", config, "--yes", "--until", "start-standalone").returncode == 0
    node3 = fresh_lab.layout.host("node3")
    pid = read_pid(node3.pidfile)
    assert mongod_alive(pid)
    os.kill(pid, signal.SIGKILL)  # the lab's own pid: a crash of node3's standalone mongod
    while mongod_alive(pid):
        time.sleep(0.1)

    result = run_cli("run", "-c", config, "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "step rewrite-replset-config" in result.stderr
    assert str(node3.maintenance_port) in result.stderr or "node3" in result.stderr
    assert f"splitter run -c {config}" in result.stderr
    assert "Traceback" not in result.stderr

    # The operator brings node3 back (standalone, as the previous step left it), then resumes.
    AnsibleAdapter(fresh_lab.layout.inventory_path, fresh_lab.layout.root / ".ansible").run(
        "mongod_start.yml", ["node3"], {"mongod_mode": "standalone"})
    result = run_cli("run", "-c", config, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    states = {p.name: p.state for p in fresh_lab.processes()}
    assert sorted(states[n] for n in ("node3", "node4", "arbiter2")) == ["rs2/ARBITER", "rs2/PRIMARY",
                                                                         "rs2/SECONDARY"]


def _variant(lab: Lab, tmp_path: Path, **planning) -> Path:
    config = yaml.safe_load(lab.layout.config_path.read_text())
    config["inventory"] = str(lab.layout.inventory_path)
    config["state_dir"] = str(tmp_path / "state")
    config["planning"] = {**config.get("planning", {}), **planning}
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_preflight_refuses_low_disk_with_the_numbers(shared_lab: Lab, tmp_path: Path) -> None:
    before = fingerprint(shared_lab)
    config = _variant(shared_lab, tmp_path, min_free_disk_fraction=0.9999, min_free_disk_vs_data=10**9)
    result = run_cli("run", "-c", str(config), "--yes")
    assert result.returncode == 2, result.stderr
    assert "disk free (minimum 100%):" in result.stderr and "needed (1e+09 x its" in result.stderr
    assert fingerprint(shared_lab) == before


def test_preflight_refuses_a_lagging_member(shared_lab: Lab, tmp_path: Path) -> None:
    node2 = shared_lab.layout.host("node2").host
    config = _variant(shared_lab, tmp_path, max_member_lag="1s")
    with MongoClient(node2, directConnection=True) as locked, \
            MongoClient(shared_lab.layout.connection_string) as client:
        locked.admin.command("fsync", lock=True)
        try:
            client.scratch.lag.insert_one({"at": time.time()})  # w:1: node2 cannot apply it while locked
            time.sleep(2.5)
            before = fingerprint(shared_lab)
            result = run_cli("plan", "-c", str(config))
            assert result.returncode == 2, result.stdout + result.stderr
            assert f"{node2} lags" in result.stderr and "(limit 1s)" in result.stderr
            assert fingerprint(shared_lab) == before
        finally:
            while locked.admin.command("fsyncUnlock").get("lockCount", 0) > 0:
                pass
            reader = LagReader(client)
            deadline = time.monotonic() + 60
            while reader.read().worst > 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert reader.read().worst == 0, "node2 did not catch up after fsyncUnlock"
            client.drop_database("scratch")
