"""Bad input to `splitter grow` and to a second split: exit 2, one message, the cluster untouched.

Grow configs are written for the shared lab with two unregistered new nodes (an inventory copy in tmp_path), so
nothing of the shared lab changes; the published routing document a second split reads is put on rs1 for the
test and removed afterwards."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.lab.layout import LabLayout
from splitter.routing import Routing
from splitter.routing_document import COLLECTION, DATABASE, RoutingDocument
from tests.helpers import fingerprint, run_cli

pytestmark = pytest.mark.mongod

Mutation = Callable[[dict, dict, Path], None]


def _grow_files(lab: Lab, tmp_path: Path, mutate: Mutation) -> Path:
    layout = LabLayout(tmp_path / "new-nodes", lab.layout.base_port, ("node5", "node6"))
    inventory = yaml.safe_load(lab.layout.inventory_path.read_text())
    for name in ("node5", "node6"):
        inventory["all"]["children"]["data_nodes"]["hosts"][name] = layout.inventory_entry(layout.host(name))
    config = {"set": {"name": "rs1", "members": [{"name": n, "host": lab.layout.host(n).host}
                                                 for n in ("node1", "node2", "node3", "node4")]},
              "new_members": [{"name": n, "host": layout.host(n).host, "dbpath": str(layout.host(n).dbpath)}
                              for n in ("node5", "node6")],
              "inventory": str(tmp_path / "inventory.yml"), "state_dir": str(tmp_path / "state")}
    mutate(config, inventory, tmp_path)
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    path = tmp_path / "grow.yaml"
    raw = config.pop("__raw__", None)
    path.write_text(raw or yaml.safe_dump(config))
    return path


def _set(key: str, value: object) -> Mutation:
    def mutate(config: dict, _inv: dict, _tmp: Path) -> None:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return mutate


def _dbpath_not_empty(config: dict, _inv: dict, _tmp: Path) -> None:
    dbpath = Path(config["new_members"][1]["dbpath"])
    dbpath.mkdir(parents=True)
    (dbpath / "WiredTiger").write_text("x")


def _duplicate_owner(config: dict, _inv: dict, _tmp: Path) -> None:
    routing = "routing:\n  modulus: 2\n  owners:\n    0: rs1\n    1: rs2\n    1: rs1\n  databases: {app: user_id}\n"
    config["__raw__"] = yaml.safe_dump(config) + routing


ROUTING = {"modulus": 2, "owners": {0: "rs1", 1: "rs2"}, "databases": {"app": "user_id"}}

GROW_CASES: list[tuple[str, Mutation, str]] = [
    ("owners-leave-a-residue-unowned", _set("routing", {**ROUTING, "modulus": 3}), "residue(s) [2] owned by no set"),
    ("one-residue-to-two-sets", _duplicate_owner, "key 1 appears twice"),
    ("set-owns-no-residue", _set("routing", {**ROUTING, "owners": {0: "rs2", 1: "rs3"}}), "no residue to rs1"),
    ("new-member-already-a-member", _set("new_members.0.host", "127.0.0.1:1"), None),  # wired below
    ("set-members-differ", lambda c, i, t: c["set"]["members"].pop(), "differ from grow.yaml's set.members"),
    ("new-member-not-in-inventory", lambda c, i, t: i["all"]["children"]["data_nodes"]["hosts"].pop("node6"),
     "has no host node6"),
    ("new-dbpath-not-empty", _dbpath_not_empty, "is not empty"),
    ("new-disk-too-small", _set("planning", {"min_free_disk_vs_data": 10**9}), "the initial sync needs"),
    ("new-port-in-use", _set("new_members.0.host", None), "already answers"),  # wired below
    ("unknown-key", _set("new_member", []), "new_member: unknown key"),
]


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _exits_2_untouched(lab: Lab, args: list[str], expected: str) -> None:
    before = fingerprint(lab)
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1, result.stderr
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert fingerprint(lab) == before


def test_grow_baseline_config_is_valid(shared_lab: Lab, tmp_path: Path) -> None:
    path = _grow_files(shared_lab, tmp_path, lambda c, i, t: None)
    before = fingerprint(shared_lab)
    result = run_cli("grow", "plan", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert fingerprint(shared_lab) == before


@pytest.mark.parametrize(("name", "mutate", "expected"), GROW_CASES, ids=[c[0] for c in GROW_CASES])
def test_grow_bad_input_exits_2_and_changes_nothing(shared_lab: Lab, tmp_path: Path, listener: int, name: str,
                                                    mutate: Mutation, expected: str | None) -> None:
    if name == "new-member-already-a-member":
        mutate, expected = _set("new_members.0.host", shared_lab.layout.host("node4").host), "distinct names and hosts"
    if name == "new-port-in-use":
        def mutate(c: dict, i: dict, _t: Path) -> None:
            c["new_members"][0]["host"] = f"127.0.0.1:{listener}"
            i["all"]["children"]["data_nodes"]["hosts"]["node5"]["mongod_port"] = listener
    path = _grow_files(shared_lab, tmp_path, mutate)
    _exits_2_untouched(shared_lab, ["grow", "run", "-c", str(path)], expected)  # type: ignore[arg-type]
    assert not (tmp_path / "new-nodes" / "node5" / "mongod.pid").exists()


@pytest.fixture
def published(shared_lab: Lab) -> Iterator[None]:
    """rs1 as an earlier split left it: the routing document says rs1 holds % 2 == 0 and rs2 % 2 == 1."""
    routing = Routing.model_validate(ROUTING)
    doc = RoutingDocument.build(routing, epoch=3, state="final", owners=routing.owners, moving=(),
                                sets={"rs1": [], "rs2": []})
    with MongoClient(shared_lab.layout.connection_string) as client:
        client[DATABASE][COLLECTION].insert_one(doc.to_bson())
        try:
            yield
        finally:
            client.drop_database(DATABASE)


def _second_split(lab: Lab, tmp_path: Path, owners: dict[int, str] | None, raw_owners: str | None = None) -> Path:
    config = copy.deepcopy(yaml.safe_load(lab.layout.config_path.read_text()))
    config.update(inventory=str(lab.layout.inventory_path), state_dir=str(tmp_path / "state"))
    config["target"]["name"] = "rs3"
    config["routing"] = {**config["routing"], "modulus": 4, "owners": owners or {0: "rs1", 2: "rs3"}}
    text = yaml.safe_dump(config)
    if raw_owners:
        text = text.replace("  owners:\n    0: rs1\n    2: rs3\n", raw_owners)
    path = tmp_path / "split.yaml"
    path.write_text(text)
    return path


def test_second_split_refuses_residues_the_source_does_not_hold(shared_lab: Lab, tmp_path: Path,
                                                                published: None) -> None:
    path = _second_split(shared_lab, tmp_path, {0: "rs1", 1: "rs3", 2: "rs1", 3: "rs2"})
    _exits_2_untouched(shared_lab, ["run", "-c", str(path), "--yes"],
                       "residue 1 (% 4) goes to rs3, but rs1 does not hold it (published owner: rs2)")
    assert not shared_lab.layout.host("arbiter1").pidfile.exists()
    (tmp_path / "ok").mkdir()  # its own state dir: the refused run above pinned its routing there
    ok = _second_split(shared_lab, tmp_path / "ok", {0: "rs1", 1: "rs2", 2: "rs3", 3: "rs2"})
    result = run_cli("plan", "-c", str(ok))
    assert result.returncode == 0, result.stdout + result.stderr


def test_second_split_refuses_one_residue_to_two_sets(shared_lab: Lab, tmp_path: Path) -> None:
    raw = "  owners:\n    0: rs1\n    1: rs2\n    2: rs3\n    3: rs2\n    2: rs1\n"
    path = _second_split(shared_lab, tmp_path, None, raw_owners=raw)
    _exits_2_untouched(shared_lab, ["run", "-c", str(path), "--yes"], "key 2 appears twice")
