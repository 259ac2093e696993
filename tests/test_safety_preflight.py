"""Issue 14, preflight part: what the split cannot carry safely is refused at `plan` (exit 2, cluster untouched)
with the fix, or shown as a warning. Runs `splitter plan` as a process against the shared lab; every test puts
the lab back as it found it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.routing import Routing
from splitter.verify import compare_sets
from tests.helpers import config_copy, fingerprint, run_cli

pytestmark = pytest.mark.mongod


def _primary(lab: Lab) -> MongoClient:
    return MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=30000)


def _plan(lab: Lab, tmp: Path, **changes: object) -> tuple[int, str]:
    before = fingerprint(lab)
    tmp.mkdir(parents=True, exist_ok=True)
    result = run_cli("plan", "-c", str(config_copy(lab, tmp, **changes)))
    assert fingerprint(lab) == before, "plan changed the cluster"
    return result.returncode, result.stdout + result.stderr


def _routing(lab: Lab, **changes: object) -> dict:
    routing = yaml.safe_load(lab.layout.config_path.read_text())["routing"]
    return {**routing, **changes}


@contextmanager
def _member_changes(lab: Lab, changes: dict[str, dict], settings: dict | None = None) -> Iterator[None]:
    """Reconfigure rs1 (members by name -> fields), and put the original config back afterwards."""
    with _primary(lab) as client:
        original = client.admin.command("replSetGetConfig")["config"]
        hosts = {lab.layout.host(n).host: f for n, f in changes.items()}
        new = {**original, "version": original["version"] + 1,
               "members": [{**m, **hosts.get(m["host"], {})} for m in original["members"]]}
        if settings:
            new["settings"] = {**original.get("settings", {}), **settings}
        client.admin.command("replSetReconfig", new)
        try:
            yield
        finally:
            current = client.admin.command("replSetGetConfig")["config"]
            client.admin.command("replSetReconfig", {**original, "version": current["version"] + 1})


def test_time_series_and_views_are_refused_until_excluded(shared_lab: Lab, tmp_path: Path) -> None:
    with _primary(shared_lab) as client:
        app = client.app
        app.create_collection("metrics", timeseries={"timeField": "at", "metaField": "user_id"})
        app.command("create", "paid_users", viewOn="users", pipeline=[{"$match": {"plan": "pro"}}])
        try:
            code, out = _plan(shared_lab, tmp_path / "a")
            assert code == 2, out
            assert "app.metrics is a time-series collection" in out and "app.paid_users is a view" in out
            assert "add 'app.metrics' to routing.exclude" in out
            code, out = _plan(shared_lab, tmp_path / "b",
                              routing=_routing(shared_lab, exclude=["app.metrics", "app.paid_users"]))
            assert code == 0, out
            # verify names what it did not compare (rs1 against itself: only the listing matters here)
            report = compare_sets(client, client, Routing(remainders={"rs1": 0, "rs2": 1},
                                                          databases={"app": "user_id"}), ["rs2"])
            assert report.ok and "not compared: app.metrics (a time-series collection), app.paid_users (a view)" \
                in report.summary()
        finally:
            app.drop_collection("metrics")
            app.drop_collection("paid_users")


def test_unique_index_without_the_key_is_refused_until_acknowledged(shared_lab: Lab, tmp_path: Path) -> None:
    with _primary(shared_lab) as client:
        users = client.app.users
        users.create_index("name", unique=True)
        users.create_index([("user_id", 1), ("plan", 1), ("name", 1)], unique=True, name="with_key")
        try:
            code, out = _plan(shared_lab, tmp_path / "a")
            assert code == 2, out
            assert "unique index app.users:name_1 does not contain the routing key 'user_id'" in out
            assert "acknowledge.unique_indexes" in out and "with_key" not in out
            code, out = _plan(shared_lab, tmp_path / "b", acknowledge={"unique_indexes": ["app.users:name_1"]})
            assert code == 0, out
            assert "warning: unique index app.users:name_1" in out and "(acknowledged in split.yaml)" in out
        finally:
            users.drop_index("name_1")
            users.drop_index("with_key")


def test_delayed_hidden_moving_member_is_refused_at_plan(shared_lab: Lab, tmp_path: Path) -> None:
    with _member_changes(shared_lab, {"node3": {"priority": 0, "hidden": True, "secondaryDelaySecs": 5}}):
        code, out = _plan(shared_lab, tmp_path)
    assert code == 2, out
    node3 = shared_lab.layout.host("node3").host
    assert f"{node3} is delayed (secondaryDelaySecs 5)" in out and f"{node3} is hidden" in out
    assert "make " + node3 + " an ordinary member first" in out


def test_write_modes_rs2_could_not_satisfy_are_refused(shared_lab: Lab, tmp_path: Path) -> None:
    tags = {"node1": {"tags": {"dc": "east"}}, "node2": {"tags": {"dc": "west"}},
            "node3": {"tags": {"dc": "east"}}, "node4": {"tags": {"dc": "east"}}}
    with _member_changes(shared_lab, tags, settings={"getLastErrorModes": {"twoDCs": {"dc": 2}}}):
        code, out = _plan(shared_lab, tmp_path)
    assert code == 2, out
    assert "rs2: write concern mode 'twoDCs' needs 2 distinct values of tag 'dc', its data nodes have 1 (east)" in out
    assert "rs1:" not in out.split("preflight refused")[1].split("fix:")[0]


def test_index_build_in_progress_is_refused(shared_lab: Lab, tmp_path: Path) -> None:
    with _primary(shared_lab) as client:
        client.admin.command("configureFailPoint", "hangAfterStartingIndexBuild", mode="alwaysOn")
        build = threading.Thread(target=lambda: client.app.events.create_index("kind"), daemon=True)
        build.start()
        try:
            code, out = _plan(shared_lab, tmp_path)
        finally:
            client.admin.command("configureFailPoint", "hangAfterStartingIndexBuild", mode="off")
            build.join(60)
            client.app.events.drop_index("kind_1")
    assert code == 2, out
    assert "index builds in progress: app.events (kind_1)" in out


def test_users_copies_and_out_targets_are_warned(shared_lab: Lab, tmp_path: Path) -> None:
    with _primary(shared_lab) as client:
        client.admin.command("createUser", "reporter", pwd="x", roles=[{"role": "read", "db": "app"}])
        client.app.command("profile", 2)
        try:
            list(client.app.users.aggregate([{"$match": {"plan": "pro"}}, {"$limit": 3}, {"$out": "pro_users"}]))
            code, out = _plan(shared_lab, tmp_path)
        finally:
            client.app.command("profile", 0)
            client.app.drop_collection("system.profile")
            client.app.drop_collection("pro_users")
            client.admin.command("dropUser", "reporter")
    assert code == 0, out
    assert "warning: rs2 will hold a frozen copy of 1 user(s) and 0 role(s) from rs1 (reporter@admin)" in out
    assert "warning: $out/$merge into app.pro_users (in the profiler)" in out
