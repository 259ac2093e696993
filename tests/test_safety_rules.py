"""Issue 14: the pure rules behind preflight's refusals (the same rules run on real mongod in
test_safety_preflight.py); sharded members are only shown here, the lab cannot start a shard server."""

from __future__ import annotations

from splitter.cluster.replset_rules import config_problems, mover_problems
from splitter.preflight.namespaces import stage_targets, unique_without_key
from splitter.preflight.server import cluster_role, index_builds


def _config(**member3: object) -> dict:
    return {"_id": "rs2", "members": [{"_id": 2, "host": "c:1", **member3}, {"_id": 3, "host": "d:1"},
                                      {"_id": 4, "host": "e:1", "arbiterOnly": True}]}


def test_sharded_members_and_index_builds_are_recognised() -> None:
    assert cluster_role({"parsed": {"sharding": {"clusterRole": "shardsvr"}}}) == "shardsvr"
    assert cluster_role({"parsed": {"net": {"port": 1}}}) is None
    ops = [{"ns": "app.$cmd", "command": {"createIndexes": "users", "indexes": [{"name": "email_1"}]}}, {}]
    assert index_builds(ops) == ["app.users (email_1)"]


def test_rs2_config_rules() -> None:
    assert config_problems(_config()) == []
    assert "c:1 is delayed but has priority 1" in config_problems(_config(secondaryDelaySecs=5))[0]
    assert mover_problems({"host": "c:1", "hidden": True, "priority": 0}, "rs2")[0].startswith("c:1 is hidden")
    both_zero = _config(priority=0)
    both_zero["members"][1]["priority"] = 0
    assert "no data node can become primary" in config_problems(both_zero)[0]
    modes = {**_config(tags={"dc": "a"}), "settings": {"getLastErrorModes": {"two": {"dc": 2}}}}
    assert "needs 2 distinct values of tag 'dc', its data nodes have 1 (a)" in config_problems(modes)[0]


def test_unique_indexes_and_out_targets() -> None:
    indexes = [{"name": "_id_", "key": {"_id": 1}, "unique": True}, {"name": "email_1", "key": {"email": 1},
                                                                     "unique": True},
               {"name": "k", "key": {"user_id": 1, "email": 1}, "unique": True}, {"name": "x", "key": {"x": 1}}]
    assert unique_without_key(indexes, "user_id") == ["email_1"]
    assert stage_targets([{"$match": {}}, {"$out": "r"}], "app") == ["app.r"]
    assert stage_targets([{"$merge": {"into": {"db": "o", "coll": "m"}}}], "app") == ["o.m"]
