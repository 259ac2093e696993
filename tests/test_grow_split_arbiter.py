"""Splitting a set that already has an arbiter (as every set an earlier split leaves): the arbiter stays with the
set that keeps its name, the new set gets its own; rollback leaves the kept arbiter in place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from splitter.lab.growth import add_hosts
from splitter.lab.lab import Lab
from splitter.lab.layout import SOURCE_SET
from tests.helpers import run_cli

pytestmark = pytest.mark.mongod


def _with_arbiter(lab: Lab, name: str) -> Lab:
    """rs1 = node1..node4 + `name` as its arbiter, started by the lab's playbook."""
    lab = add_hosts(lab, [name])
    lab.adapter.run("mongod_start.yml", [name], {"mongod_mode": "replset", "replset_name": SOURCE_SET})
    with MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=30000) as client:
        client.admin.command("setDefaultRWConcern", 1, defaultWriteConcern={"w": "majority"})
        config = client.admin.command("replSetGetConfig")["config"]
        config["version"] += 1
        config["members"].append({"_id": 9, "host": lab.layout.host(name).host, "arbiterOnly": True})
        client.admin.command("replSetReconfig", config)
    return lab


def _split_config(lab: Lab, arbiter: str) -> Path:
    config = yaml.safe_load(lab.layout.config_path.read_text())
    host = lab.layout.host(arbiter)
    config["arbiters"]["source"] = {"name": arbiter, "host": host.host, "dbpath": str(host.dbpath)}
    path = lab.layout.root / "split-kept-arbiter.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _states(lab: Lab) -> dict[str, str]:
    return {p.name: p.state for p in Lab.existing(lab.layout.root).processes()}


def test_split_keeps_the_existing_arbiter_and_rollback_leaves_it(fresh_lab: Lab) -> None:
    lab = _with_arbiter(fresh_lab, "arbiter3")
    config = str(_split_config(lab, "arbiter3"))

    partial = run_cli("run", "-c", config, "--yes", "--until", "remove-moving-nodes")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    rolled = run_cli("rollback", "-c", config)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    states = _states(lab)
    assert states["arbiter3"] == "rs1/ARBITER"
    assert sorted(states[n] for n in ("node1", "node2", "node3", "node4")) == ["rs1/PRIMARY"] + ["rs1/SECONDARY"] * 3

    # Up to the new set with its own arbiter (the cutover after it is the split's, tested elsewhere).
    done = run_cli("run", "-c", config, "--yes", "--until", "start-arbiter-rs2")
    assert done.returncode == 0, done.stdout + done.stderr
    states = _states(lab)
    assert sorted(states[n] for n in ("node1", "node2", "arbiter3")) == ["rs1/ARBITER", "rs1/PRIMARY",
                                                                         "rs1/SECONDARY"]
    assert sorted(states[n] for n in ("node3", "node4", "arbiter2")) == ["rs2/ARBITER", "rs2/PRIMARY",
                                                                         "rs2/SECONDARY"]
    assert states["arbiter1"] == "DOWN"  # never prepared nor started
    assert not lab.layout.host("arbiter1").dbpath.exists()
