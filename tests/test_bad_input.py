"""Bad input never touches the cluster: exit 2, one clear message naming problem and fix, rs1 unchanged.

Every case is run through `splitter run --yes` (the dangerous path) against the shared lab, and rs1's config
version, term and member states are compared before and after.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from splitter.lab.lab import Lab
from tests.helpers import fingerprint, run_cli

pytestmark = pytest.mark.mongod

Mutation = Callable[[dict[str, Any], dict[str, Any], Path], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(config: dict, _inv: dict, _tmp: Path) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return mutate


def _inv(host: str, key: str, value: Any) -> Mutation:
    def mutate(_config: dict, inventory: dict, _tmp: Path) -> None:
        group = "arbiters" if host.startswith("arbiter") else "data_nodes"
        hosts = inventory["all"]["children"][group]["hosts"]
        if key == "*":
            del hosts[host]
        elif value is DELETE:
            del hosts[host][key]
        else:
            hosts[host][key] = value
    return mutate


DELETE = object()


def _raw(text: str) -> Mutation:
    def mutate(config: dict, _inv: dict, _tmp: Path) -> None:
        config["__raw__"] = text
    return mutate


def _inventory_raw(text: str) -> Mutation:
    def mutate(_config: dict, inventory: dict, _tmp: Path) -> None:
        inventory["__raw__"] = text
    return mutate


def _port(config: dict, name: str) -> int:
    return int(next(m for m in config["source"]["members"] if m["name"] == name)["host"].rsplit(":", 1)[1])


def _member_port(name: str, port_of: Callable[[int], int]) -> Mutation:
    def mutate(config: dict, inventory: dict, _tmp: Path) -> None:
        new = port_of(_port(config, name))
        next(m for m in config["source"]["members"] if m["name"] == name)["host"] = f"127.0.0.1:{new}"
        inventory["all"]["children"]["data_nodes"]["hosts"][name]["mongod_port"] = new
    return mutate


def _arbiter_dbpath_not_empty(config: dict, inventory: dict, tmp: Path) -> None:
    path = tmp / "busy-arbiter"
    path.mkdir()
    (path / "leftover.wt").write_text("x")
    config["arbiters"]["source"]["dbpath"] = str(path)
    inventory["all"]["children"]["arbiters"]["hosts"]["arbiter1"]["mongod_dbpath"] = str(path)


def _credentials(config: dict, _inv: dict, tmp: Path) -> None:
    (tmp / "user").write_text("nobody\n")
    (tmp / "password").write_text("wrong-password\n")
    config["credentials"] = {"username_file": str(tmp / "user"), "password_file": str(tmp / "password")}


def _state_dir_file(config: dict, _inv: dict, tmp: Path) -> None:
    (tmp / "not-a-dir").write_text("x")
    config["state_dir"] = str(tmp / "not-a-dir")


CASES: list[tuple[str, Mutation, str]] = [
    ("yaml-syntax", _raw("source: [unclosed\n"), "not valid YAML at line"),
    ("top-level-list", _raw("- a\n- b\n"), "expected a mapping"),
    ("missing-source", _set("source", DELETE), "source: required key is missing"),
    ("unknown-key", _set("sourc", {"x": 1}), "sourc: unknown key"),
    ("unknown-nested-key", _set("planning.expected_durations", "1h"), "planning.expected_durations: unknown key"),
    ("members-not-list", _set("source.members", "node1"), "source.members"),
    ("three-members", lambda c, i, t: c["source"]["members"].pop(), "source.members"),
    ("keep-unknown-name", _set("source.keep", ["node1", "node9"]), "node9, not listed in members"),
    ("keep-move-overlap", _set("source.move", ["node2", "node4"]), "exactly once"),
    ("host-not-host-port", _set("source.members.0.host", "localhost"), "is not host:port"),
    ("same-set-names", _set("target.name", "rs1"), "target.name must differ"),
    ("duplicate-hosts", lambda c, i, t: c["source"]["members"][1].update(host=c["source"]["members"][0]["host"]),
     "distinct names and hosts"),
    ("arbiter-on-member-host", lambda c, i, t: c["arbiters"]["source"].update(host=c["source"]["members"][0]["host"]),
     "arbiter hosts must differ"),
    ("remainders-equal", _set("routing.owners", {0: "rs1", 1: "rs1"}), "gives no residue to rs2"),
    ("remainder-out-of-range", _set("routing.owners", {0: "rs1", 1: "rs2", 2: "rs2"}), "outside 0..1"),
    ("residue-unowned", _set("routing.modulus", 3), "residue(s) [2] owned by no set"),
    ("remainders-stranger", lambda c, i, t: c["routing"].pop("owners") and c["routing"].update(
        remainders={"rs1": 0, "rsX": 1}), "neither source.name (rs1) nor target.name (rs2)"),
    ("state-dir-is-a-file", _state_dir_file, "exists and is not a directory"),
    ("remainders-and-owners", _set("routing.remainders", {"rs1": 1, "rs2": 0}), "not both"),
    ("modulus-one", _set("routing.modulus", 1), "routing.modulus"),
    ("routing-no-databases", _set("routing.databases", {}), "routing.databases"),
    ("collection-without-db", _set("routing.collections", {"events": "user_id"}), "database.collection"),
    ("wrong-type-port-list", _set("gates", "soon"), "gates"),
    ("inventory-missing-file", _set("inventory", "nowhere.yml"), "cannot read inventory"),
    ("inventory-not-yaml", _inventory_raw("all: [\n"), "inventory is not valid YAML"),
    ("inventory-no-all", _inventory_raw("hosts: {}\n"), "top-level `all:`"),
    ("inventory-host-missing", _inv("arbiter2", "*", None), "has no host arbiter2"),
    ("inventory-var-missing", _inv("node3", "mongod_port", DELETE), "node3 lacks mongod_port"),
    ("inventory-bad-manager", _inv("node2", "mongod_manager", "upstart"), "mongod_manager is 'upstart'"),
    ("inventory-port-mismatch", _inv("node4", "mongod_port", 1), "inventory says mongod_port 1"),
    ("wrong-set-name", lambda c, i, t: (_set("source.name", "rsX")(c, i, t),
                                       _set("routing.owners", {0: "rsX", 1: "rs2"})(c, i, t)),
     "set named 'rs1', split.yaml says source.name 'rsX'"),
    ("host-not-a-member", _member_port("node4", lambda p: p + 3), "differ from split.yaml"),
    ("unreachable-hosts", lambda c, i, t: [_member_port(n, lambda p: p + 7)(c, i, t)
                                           for n in ("node1", "node2", "node3", "node4")], "no member of rs1"),
    ("arbiter-dbpath-differs", _set("arbiters.target.dbpath", "/tmp/elsewhere"), "differs from the inventory"),
    ("arbiter-dbpath-not-empty", _arbiter_dbpath_not_empty, "is not empty"),
    ("routed-db-missing", _set("routing.databases", {"nope": None}), "routed database 'nope' does not exist"),
    ("routing-key-absent", _set("routing.collections", {"app.events": "customer"}),
     "routing key 'customer' is absent from app.events"),
    ("credentials-env-unset", _set("credentials", {"username_env": "SPLITTER_T_U", "password_env": "SPLITTER_T_P"}),
     "SPLITTER_T_U"),
    ("credentials-half", _set("credentials", {"username_env": "HOME"}), "both a username and a password"),
    ("credentials-rejected", _credentials, "rejected the credentials"),
    ("bad-duration", _set("planning.expected_duration", "soon"), "not a duration"),
]


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """Something that is not an arbiter, listening where an arbiter should go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


CASES.append(("arbiter-port-in-use", lambda c, i, t: None, "already answers"))  # wired below with `listener`


def _write_case(lab: Lab, tmp_path: Path, mutate: Mutation) -> Path:
    config = yaml.safe_load(lab.layout.config_path.read_text())
    inventory = yaml.safe_load(lab.layout.inventory_path.read_text())
    config = copy.deepcopy(config)
    config["inventory"] = str(tmp_path / "inventory.yml")
    config["state_dir"] = str(tmp_path / "state")
    mutate(config, inventory, tmp_path)
    raw_inventory = inventory.pop("__raw__", None)
    (tmp_path / "inventory.yml").write_text(raw_inventory or yaml.safe_dump(inventory))
    raw = config.pop("__raw__", None)
    path = tmp_path / "split.yaml"
    path.write_text(raw or yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("name", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_message_and_changes_nothing(
        shared_lab: Lab, tmp_path: Path, listener: int, name: str, mutate: Mutation, expected: str) -> None:
    if name == "arbiter-port-in-use":
        def mutate(c: dict, i: dict, _t: Path) -> None:
            c["arbiters"]["target"]["host"] = f"127.0.0.1:{listener}"
            i["all"]["children"]["arbiters"]["hosts"]["arbiter2"]["mongod_port"] = listener
    path = _write_case(shared_lab, tmp_path, mutate)
    before = fingerprint(shared_lab)
    result = run_cli("run", "-c", str(path), "--yes")
    assert result.returncode == 2, (name, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert fingerprint(shared_lab) == before
    assert not shared_lab.layout.host("arbiter1").pidfile.exists()
