"""`splitter verify`: range planning (pure), the report, the CLI's input checks, and compare_sets against two
real labs (the shared lab as the source, a fresh lab made identical to it as the target)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from click.testing import CliRunner
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from splitter.cli import verify_cmd
from splitter.config import load_config
from splitter.errors import BadInput, OperationalError
from splitter.lab.lab import Lab
from splitter.lab.layout import COLLECTIONS, DATABASE, LabLayout
from splitter.routing import Routing
from splitter.verify import VerifyReport, compare_sets, digest
from splitter.verify.ranges import id_ranges, range_step, single_bracket, type_bracket
from splitter.verify.report import CollectionHalfResult

ROUTING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={DATABASE: "user_id"})
RAW = CodecOptions(document_class=RawBSONDocument)


# -- ranges: pure ---------------------------------------------------------------------------------------
def _in_range(value: int, condition: dict) -> bool:
    bounds = condition.get("_id", {})
    return bounds.get("$gte", value) <= value and ("$lt" not in bounds or value < bounds["$lt"])


def test_id_ranges_cover_every_id_exactly_once() -> None:
    conditions = id_ranges([10, 20, 30])
    assert conditions == [{"_id": {"$lt": 10}}, {"_id": {"$gte": 10, "$lt": 20}},
                          {"_id": {"$gte": 20, "$lt": 30}}, {"_id": {"$gte": 30}}]
    for value in range(-5, 40):
        assert sum(_in_range(value, c) for c in conditions) == 1


def test_no_boundaries_is_one_full_range() -> None:
    assert id_ranges([]) == [{}]


def test_brackets_group_numbers_and_strings() -> None:
    assert single_bracket([1, Int64(2**40), 2.5, Decimal128("7")])
    assert single_bracket([ObjectId(), ObjectId()])
    assert single_bracket(["a", "zz"])
    assert single_bracket([])
    assert type_bracket(0x10) == type_bracket(0x01) == "number"
    assert type_bracket(0x07) != type_bracket(0x09)


def test_mixed_brackets_or_nan_fall_back_to_one_range() -> None:
    assert not single_bracket([1, "1"])
    assert not single_bracket([ObjectId(), 5])
    assert not single_bracket([{"a": 1}, 3])
    assert not single_bracket([float("nan"), 3])
    assert not single_bracket([Decimal128("NaN"), 3])


def test_range_step_caps_the_number_of_ranges() -> None:
    assert range_step(1000, 200, 2000) == 200
    assert range_step(10_000_000, 200, 1000) == 10_000
    assert range_step(0, 200, 10) == 200


def test_digest_sum_is_order_independent() -> None:
    raws = [f"doc-{i}".encode() for i in range(50)]
    mask = (1 << 64) - 1
    assert sum(map(digest, raws)) & mask == sum(map(digest, reversed(raws))) & mask
    assert digest(b"a") != digest(b"b")


def test_report_json_and_message_name_the_ids() -> None:
    oid = ObjectId()
    bad = CollectionHalfResult("app.events", "rs2", "user_id", 3, 10, 9, "01", "02", missing=(oid,),
                               missing_count=1, different=(7,), different_count=3)
    report = VerifyReport("rs1", "rs2", ("rs2",), (bad,), (), 0.1)
    assert not report.ok
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["collections"][0]["missing"] == [{"$oid": str(oid)}]
    assert doc["collections"][0]["different"] == [7]
    assert str(oid) in report.summary() and "3 different (_id 7, ...)" in report.summary()


# -- CLI input checks (no mongod) -----------------------------------------------------------------------
def _write_config(tmp_path: Path, base_port: int) -> Path:
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(LabLayout(tmp_path, base_port).split_config()))
    return path


def test_cli_missing_config_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(verify_cmd.verify, ["-c", str(tmp_path / "nope.yaml")])
    assert isinstance(result.exception, BadInput)
    proc = subprocess.run([sys.executable, "-m", "splitter", "verify", "-c", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot read config" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_unknown_half_is_bad_input(tmp_path: Path) -> None:
    config = _write_config(tmp_path, 36900)
    result = CliRunner().invoke(verify_cmd.verify, ["-c", str(config), "--half", "rs9"])
    assert isinstance(result.exception, BadInput) and "rs1, rs2, target or both" in result.exception.message
    assert verify_cmd.resolve_halves(load_config(config), "both") == ["rs1", "rs2"]
    assert verify_cmd.resolve_halves(load_config(config), "target") == ["rs2"]


def test_cli_unreachable_set_names_set_and_hosts(tmp_path: Path) -> None:
    config = _write_config(tmp_path, 36900)  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "splitter", "verify", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot reach replica set rs1 at 127.0.0.1:36900, 127.0.0.1:36910" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- compare_sets against real mongod ------------------------------------------------------------------
@pytest.fixture
def pair(shared_lab: Lab, lab_factory: Callable[..., Lab]) -> Iterator[tuple[Lab, MongoClient, MongoClient]]:
    """(source lab, source client, target client): the target's app db is a byte-identical copy."""
    target_lab = lab_factory()
    with MongoClient(shared_lab.layout.connection_string) as source, \
            MongoClient(target_lab.layout.connection_string, w=4) as target:
        target.drop_database(DATABASE)
        for name in COLLECTIONS:
            docs = list(source.get_database(DATABASE, codec_options=RAW)[name].find())
            target[DATABASE][name].insert_many(docs)
        yield shared_lab, source, target


def _settled(client: MongoClient) -> None:
    """Wait until every secondary's majority snapshot holds the primary's last write: verify reads
    secondaries at read concern majority, which trail an acknowledged write by up to a heartbeat."""
    from splitter.waiting import wait_until

    status = client.admin.command("replSetGetStatus")
    goal = status["optimes"]["appliedOpTime"]["ts"]  # the last write, acknowledged or not yet committed
    for member in status["members"]:
        if member.get("stateStr") != "SECONDARY":
            continue
        with MongoClient(member["name"], directConnection=True) as direct:
            wait_until(f"{member['name']}'s majority snapshot", lambda d=direct: d.admin.command(
                "replSetGetStatus")["optimes"]["lastCommittedOpTime"]["ts"] >= goal, timeout=60, interval=0.1)


def _by_ns(report: VerifyReport, half: str) -> dict[str, CollectionHalfResult]:
    return {r.namespace: r for r in report.results if r.half == half}


def _odd(target: MongoClient, name: str, n: int) -> list:
    return [d["_id"] for d in target[DATABASE][name].find({"user_id": {"$mod": [2, 1]}}).sort("_id", 1).limit(n)]


@pytest.mark.mongod
def test_compare_sets_finds_missing_extra_and_different(pair: tuple[Lab, MongoClient, MongoClient],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lab, source, target = pair
    app = target.get_database(DATABASE, write_concern=WriteConcern(w=4))

    def compare(halves: list[str], samples: int = 5) -> VerifyReport:
        _settled(source)
        _settled(target)
        return compare_sets(source, target, ROUTING, halves, samples=samples, workers=4, range_docs=200,
                            source_name="rs1", target_name="rs2")

    # Identical copies: both halves match; every document is in one half (none unclaimed).
    report = compare(["rs1", "rs2"])
    assert report.ok, report.summary()
    assert len(report.results) == 2 * len(COLLECTIONS)
    for name in COLLECTIONS:
        total = source[DATABASE][name].count_documents({})
        assert sum(r.count_source for r in report.results if r.namespace == f"{DATABASE}.{name}") == total
    assert _by_ns(report, "rs2")["app.users"].ranges == 3 and _by_ns(report, "rs2")["app.events"].ranges > 3

    # Unclaimed documents are counted and shown, never a failure.
    app.users.insert_many([{"_id": 100_000, "user_id": "x"}, {"_id": 100_001}])
    report = compare(["rs1", "rs2"])
    assert report.ok
    assert {u.namespace: (u.count_source, u.count_target) for u in report.unclaimed}["app.users"] == (0, 2)

    # A change in rs1's half fails only the check of rs1's half.
    app.users.update_one({"_id": 10}, {"$set": {"name": "changed"}})
    assert compare(["rs2"]).ok
    report = compare(["rs1"])
    assert not report.ok and _by_ns(report, "rs1")["app.users"].different == (10,)

    # rs2's half: one different, one missing, one extra.
    app.users.update_one({"_id": 11}, {"$set": {"plan": "changed"}})
    gone = _odd(target, "events", 5)
    app.events.delete_many({"_id": {"$in": gone}})
    extra = app.sessions.insert_one({"user_id": 3, "seq": -1, "ttl": 1}).inserted_id
    report = compare(["rs2"], samples=2)
    results = _by_ns(report, "rs2")
    assert not report.ok
    assert results["app.users"].different == (11,) and results["app.users"].count_source == \
        results["app.users"].count_target
    assert results["app.events"].missing == tuple(gone[:2]) and results["app.events"].missing_count == 5
    assert results["app.events"].count_target == results["app.events"].count_source - 5
    assert results["app.sessions"].extra == (extra,) and not results["app.sessions"].missing
    assert {r.namespace for r in report.failures} == {"app.users", "app.events", "app.sessions"}

    # A string _id among ints: no common bracket, so users becomes one range; the document is still found.
    app.users.insert_one({"_id": "str-id", "user_id": 13})
    users = _by_ns(compare(["rs2"]), "rs2")["app.users"]
    assert users.ranges == 1 and users.extra == ("str-id",) and users.different == (11,)

    # The CLI: table / JSON, exit via OperationalError naming the collections and _ids.
    monkeypatch.setattr(verify_cmd, "open_sets", lambda config, connector: (source, target))
    result = CliRunner().invoke(verify_cmd.verify, ["-c", str(lab.layout.config_path), "--json", "--half", "rs2"])
    assert isinstance(result.exception, OperationalError), result.output
    assert json.loads(result.stdout)["ok"] is False
    assert "app.users (rs2's half)" in result.exception.message and "_id 11" in result.exception.message
    result = CliRunner().invoke(verify_cmd.verify, ["-c", str(lab.layout.config_path), "--half", "rs2"])
    assert "NO" in result.stdout and "str-id" in result.stdout


# -- a verify that was killed resumes without reading finished ranges again ------------------------------
SLOW_CHILD = """
import json, sys, time
from pathlib import Path
from pymongo import MongoClient
from splitter.routing import Routing
from splitter.store.files import StateFiles
from splitter.store.verify_progress import VerifyProgress
from splitter.verify import compare as compare_module
args = json.loads(sys.argv[1])
real = compare_module._hash_range
def slow(coll, query, hint):  # slow enough to be killed halfway
    time.sleep(0.05)
    return real(coll, query, hint)
compare_module._hash_range = slow
resume = VerifyProgress.open(StateFiles(Path(args["state"])), ["rs1", "rs2"], 200)
compare_module.compare_sets(MongoClient(args["source"]), MongoClient(args["target"]), Routing(**args["routing"]),
                            ["rs1", "rs2"], workers=1, range_docs=200, resume=resume)
"""


def _uri(client: MongoClient) -> str:
    client.admin.command("ping")
    return "mongodb://" + ",".join(f"{h}:{p}" for h, p in sorted(client.nodes)) + "/?replicaSet=rs1"


@pytest.mark.mongod
def test_verify_killed_halfway_resumes_without_rereading_finished_ranges(
        pair: tuple[Lab, MongoClient, MongoClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import time

    from splitter.store.files import StateFiles
    from splitter.store.verify_progress import VerifyProgress
    from splitter.verify import compare as compare_module

    _lab, source, target = pair
    files = StateFiles(tmp_path / "state")
    args = {"source": _uri(source), "target": _uri(target), "routing": ROUTING.model_dump(),
            "state": str(files.root)}
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHILD, json.dumps(args)])
    try:
        deadline = time.monotonic() + 120
        while len(VerifyProgress.open(files, ["rs1", "rs2"], 200).done) < 20:
            assert child.poll() is None and time.monotonic() < deadline, "the child verify ended or stalled"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    saved = VerifyProgress.open(files, ["rs1", "rs2"], 200)
    finished = set(saved.done)
    total = sum(len(ranges) for ranges in saved.plans.values()) * 2  # two halves
    assert 20 <= len(finished) < total, (len(finished), total)

    read: list[dict] = []
    real = compare_module._hash_range

    def counting(coll, query, hint):  # type: ignore[no-untyped-def]
        read.append(query)
        return real(coll, query, hint)

    monkeypatch.setattr(compare_module, "_hash_range", counting)
    resumed = compare_sets(source, target, ROUTING, ["rs1", "rs2"], workers=2, range_docs=200, resume=saved)
    assert len(read) == 2 * (total - len(finished)), "a finished range was read again (or one was skipped)"
    fresh = compare_sets(source, target, ROUTING, ["rs1", "rs2"], workers=2, range_docs=200)
    assert resumed.ok and fresh.ok
    assert [(r.namespace, r.half, r.count_source, r.hash_source, r.count_target, r.hash_target)
            for r in resumed.results] == [(r.namespace, r.half, r.count_source, r.hash_source, r.count_target,
                                           r.hash_target) for r in fresh.results]
    saved.finish()
    assert not VerifyProgress.open(files, ["rs1", "rs2"], 200).done


@pytest.mark.mongod
def test_verify_exits_3_when_halves_differ_and_1_when_it_could_not_check(
        pair: tuple[Lab, MongoClient, MongoClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from splitter.errors import HalvesDiffer

    lab, source, target = pair
    config = _write_config(tmp_path, lab.layout.base_port)
    monkeypatch.setattr(verify_cmd, "open_sets", lambda _config, _connector: (source, target))
    equal = CliRunner().invoke(verify_cmd.verify, ["-c", str(config), "--half", "both"])
    assert equal.exit_code == 0, equal.output

    victim = _odd(target, "users", 1)[0]
    target[DATABASE].users.update_one({"_id": victim}, {"$set": {"tampered": True}})
    _settled(target)
    try:
        differ = CliRunner().invoke(verify_cmd.verify, ["-c", str(config)])
    finally:
        target[DATABASE].users.update_one({"_id": victim}, {"$unset": {"tampered": True}})
    assert isinstance(differ.exception, HalvesDiffer) and str(victim) in differ.exception.message
    assert differ.exception.exit_code == 3  # "differ"; test_cli_unreachable_set_names_set_and_hosts: 1
