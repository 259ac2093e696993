"""The node's own mongod.conf is kept through the split and rollback, on real mongod; plan shows the key diff;
a node whose running options and file disagree is refused before anything is touched; the split runs from an
operator's inventory (INI, group_vars/, host_vars/, Jinja-valued mongod_connect_host)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient

from splitter.hosts.node_config import flatten
from splitter.lab.lab import Lab
from tests.helpers import fingerprint, run_cli
from tests.test_production_units import split_inventory

# Options the old template did not know; security.authorization sits beside the lab's keyFile.
EXTRA = {"storage": {"directoryPerDB": True}, "operationProfiling": {"slowOpThresholdMs": 37},
         "setParameter": {"ttlMonitorSleepSecs": 17}, "net": {"maxIncomingConnections": 345},
         "security": {"authorization": "enabled"}}
KEPT = {"storage.directoryPerDB": True, "operationProfiling.slowOpThresholdMs": 37,
        "setParameter.ttlMonitorSleepSecs": "17", "net.maxIncomingConnections": 345,
        "security.authorization": "enabled"}


def running_options(lab: Lab, host: str) -> dict[str, Any]:
    with MongoClient(host, directConnection=True, serverSelectionTimeoutMS=20000, **lab.client_options()) as c:
        return flatten(c.admin.command("getCmdLineOpts")["parsed"])


def assert_kept(lab: Lab, host: str, **more: Any) -> None:
    options = running_options(lab, host)
    for key, value in {**KEPT, **more}.items():
        assert options.get(key) == value, (host, key, options)
    assert options.get("security.keyFile"), (host, options)


def config_diffs(stdout: str) -> dict[tuple[str, str], set[str]]:
    """(node, phase) -> the keys named on plan's `config diff` lines."""
    found = {}
    for match in re.finditer(r"config diff (\w+) \S+ \((\w+)\): (.*)", stdout):
        keys = {part.strip()[2:].split(":", 1)[0] for part in match.group(3).split(";")}
        found[(match.group(1), match.group(2))] = keys
    return found


@pytest.mark.mongod
@pytest.mark.timeout(2400)
def test_plan_shows_exactly_the_changed_keys_and_a_disagreeing_node_is_refused(shared_lab: Lab,
                                                                                tmp_path: Path) -> None:
    config = yaml.safe_load(shared_lab.layout.config_path.read_text())
    config.update(inventory=str(shared_lab.layout.inventory_path), state_dir=str(tmp_path / "state"))
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("plan", "-c", str(path))
    assert result.returncode == 0, result.stderr
    diffs = config_diffs(result.stdout)
    standalone = {"net.port", "replication.replSetName", "setParameter.disableLogicalSessionCacheRefresh",
                  "setParameter.ttlMonitorEnabled"}
    assert diffs == {("node3", "standalone"): standalone, ("node4", "standalone"): standalone,
                     ("node3", "replset"): {"replication.replSetName"},
                     ("node4", "replset"): {"replication.replSetName"}}, result.stdout

    # node4's file gains an option its running mongod does not have: refused before anything changes.
    conf = shared_lab.layout.host("node4").conf
    original = conf.read_text()
    edited = yaml.safe_load(original)
    edited.setdefault("operationProfiling", {})["slowOpThresholdMs"] = 99
    before = fingerprint(shared_lab)
    try:
        conf.write_text(yaml.safe_dump(edited))
        refused = run_cli("run", "-c", str(path), "--yes")
    finally:
        conf.write_text(original)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    message = " ".join(refused.stderr.split())
    assert "node4: the running mongod and its config file" in message
    assert "operationProfiling.slowOpThresholdMs=99" in message and "Traceback" not in message
    assert fingerprint(shared_lab) == before
    assert not shared_lab.layout.host("arbiter1").pidfile.exists()

    # An inventory whose pid file for node4 is not the one node4's file writes: the process manager could not
    # find node4 to stop it, so it is refused before anything changes.
    inventory = yaml.safe_load(shared_lab.layout.inventory_path.read_text())
    inventory["all"]["children"]["data_nodes"]["hosts"]["node4"]["mongod_pidfile"] = str(tmp_path / "other.pid")
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    path.write_text(yaml.safe_dump({**config, "inventory": str(tmp_path / "inventory.yml"),
                                    "state_dir": str(tmp_path / "state2")}))
    refused = run_cli("run", "-c", str(path), "--yes")
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    message = " ".join(refused.stderr.split())
    assert "node4: mongod_manager is process, but its config file" in message, message
    assert f"the inventory's mongod_pidfile is {tmp_path / 'other.pid'}" in message and "next:" in message
    assert fingerprint(shared_lab) == before


@pytest.mark.mongod
@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_node_options_kept_through_standalone_rollback_and_split(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(auth=True, inventory_vars={"mongod_extra_config": EXTRA})
    # The operator's inventory layout, with mongod_connect_host: "{{ ansible_host }}" in group_vars/all.yml.
    inventory = split_inventory(lab.layout.root, yaml.safe_load(lab.layout.inventory_path.read_text()))
    config = yaml.safe_load(lab.layout.config_path.read_text())
    config["inventory"] = str(inventory.relative_to(lab.layout.root))
    lab.layout.config_path.write_text(yaml.safe_dump(config))
    cfg = str(lab.layout.config_path)
    node3 = lab.layout.host("node3")
    own_file = node3.conf.read_text()
    assert_kept(lab, node3.host)

    # Generous timeouts: each command runs several playbooks, which take minutes on a loaded 2-core machine.
    result = run_cli("run", "-c", cfg, "--yes", "--until", "start-standalone", timeout=2400)
    assert result.returncode == 0, result.stderr
    assert_kept(lab, f"127.0.0.1:{node3.maintenance_port}", **{"net.port": node3.maintenance_port})
    assert "replication.replSetName" not in running_options(lab, f"127.0.0.1:{node3.maintenance_port}")

    result = run_cli("rollback", "-c", cfg, timeout=2400)
    assert result.returncode == 0, result.stderr
    assert node3.conf.read_text() == own_file  # byte for byte, and the kept copy is gone
    assert not Path(f"{node3.conf}.splitter-orig").exists()
    assert_kept(lab, node3.host, **{"replication.replSetName": "rs1"})

    # As the operator would after a rollback: arbiter 1's dbpath must be empty for a new run.
    shutil.rmtree(lab.layout.host("arbiter1").dbpath)
    result = run_cli("run", "-c", cfg, "--yes", timeout=3600)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr)
    for name, set_name in (("node1", "rs1"), ("node2", "rs1"), ("node3", "rs2"), ("node4", "rs2")):
        assert_kept(lab, lab.layout.host(name).host, **{"replication.replSetName": set_name})
