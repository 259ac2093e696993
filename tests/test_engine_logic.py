"""Pure logic: routing, rs2 config building, reconfig documents, runner resume/failure (fake steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bson import Int64, ObjectId

from splitter.cluster.applier import CrashPoint
from splitter.cluster.replset_rules import build_target_config
from splitter.config import parse_duration
from splitter.engine.runner import Runner
from splitter.errors import Interrupted, OperationalError, StepFailed
from splitter.events import EventBus, EventType, Recorder
from splitter.routing import Routing
from splitter.steps import reconfig as rc
from splitter.steps.base import Step
from splitter.store.checkpoint import RunState, StateStore

ROUTING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={"app": None},
                  collections={"app.orders": "customer_id"}, exclude=["app.settings"])


def test_owner_follows_mongodb_mod_semantics() -> None:
    assert ROUTING.owner(4) == "rs1" and ROUTING.owner(7) == "rs2" and ROUTING.owner(Int64(9)) == "rs2"
    assert ROUTING.owner(-3) is None  # MongoDB: -3 % 2 == -1, which no set keeps
    assert ROUTING.owner(True) is None and ROUTING.owner(3.0) is None and ROUTING.owner("3") is None
    assert ROUTING.owner(None) is None


def test_routed_collections_and_keys() -> None:
    assert ROUTING.routed("app", "orders").key == "customer_id"
    assert ROUTING.routed("app", "users").key == "user_id"
    assert ROUTING.routed("app", "settings") is None
    assert ROUTING.routed("other", "users") is None
    assert ROUTING.routed("app", "system.views") is None


@pytest.mark.mongod
def test_half_filters_agree_with_owner_on_a_real_server(shared_lab) -> None:
    from pymongo import MongoClient
    values = [0, 1, 2, 3, -1, -2, -3, Int64(2**40 + 1), 2.0, 3.5, "7", None, True, [1], {"a": 1}]
    with MongoClient(shared_lab.layout.connection_string) as client:
        coll = client.scratch.routing
        coll.drop()
        coll.insert_many([{"_id": i, "user_id": v} for i, v in enumerate(values)] + [{"_id": 100}])
        try:
            for set_name in ("rs1", "rs2"):
                ids = {d["_id"] for d in coll.find(ROUTING.half_filter("user_id", set_name))}
                expected = {i for i, v in enumerate(values) if ROUTING.owner(v) == set_name}
                assert ids == expected, set_name
            unclaimed = {d["_id"] for d in coll.find(ROUTING.unclaimed_filter("user_id"))}
            assert unclaimed == {i for i, v in enumerate(values) if ROUTING.owner(v) is None} | {100}
        finally:
            client.drop_database("scratch")


def test_durations() -> None:
    assert parse_duration("90s") == 90 and parse_duration("5m") == 300 and parse_duration("1.5h") == 5400
    assert parse_duration(3) == 3.0
    with pytest.raises(ValueError):
        parse_duration("soon")


STORED = {"_id": "rs1", "version": 6, "term": 4, "protocolVersion": 1, "writeConcernMajorityJournalDefault": True,
          "members": [{"_id": i, "host": f"h:{i}", "priority": 0 if i > 1 else 1, "votes": 0 if i > 1 else 1,
                       "arbiterOnly": False, "hidden": False, "tags": {}} for i in range(4)]
          + [{"_id": 4, "host": "arb1:1", "arbiterOnly": True, "priority": 0, "votes": 1}],
          "settings": {"electionTimeoutMillis": 3000, "replicaSetId": ObjectId()}}


def test_target_config_keeps_term_and_ids_and_gets_a_new_set_id() -> None:
    doc = build_target_config(STORED, "rs2", ["h:2", "h:3"], "arb2:1", {"h:2": 1.0, "h:3": 2.0})
    assert doc["_id"] == "rs2" and doc["term"] == 4 and doc["version"] == 7
    assert [(m["_id"], m["host"], m["priority"], m["votes"]) for m in doc["members"]] == [
        (2, "h:2", 1.0, 1), (3, "h:3", 2.0, 1), (5, "arb2:1", 0, 1)]
    assert doc["members"][2]["arbiterOnly"] is True
    assert doc["settings"]["electionTimeoutMillis"] == 3000
    assert doc["settings"]["replicaSetId"] != STORED["settings"]["replicaSetId"]
    assert STORED["_id"] == "rs1" and len(STORED["members"]) == 5  # input untouched


def test_reconfig_documents_change_one_thing_and_bump_version() -> None:
    demoted = rc.with_member(STORED, "h:1", priority=0, votes=0)
    assert demoted["version"] == 7 and "term" not in demoted
    assert rc.member_doc(demoted, "h:1")["votes"] == 0 and rc.member_doc(STORED, "h:1")["votes"] == 1
    removed = rc.without_member(STORED, "h:3")
    assert [m["host"] for m in removed["members"]] == ["h:0", "h:1", "h:2", "arb1:1"]
    added = rc.with_added(STORED, "new:1", arbiterOnly=True)
    assert added["members"][-1] == {"_id": 5, "host": "new:1", "arbiterOnly": True}


def test_crash_point_counts_matching_actions_in_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    killed = []
    monkeypatch.setattr("os.kill", lambda pid, sig: killed.append(sig))
    point = CrashPoint("start-rs2:playbook:2")
    point.after("stop-standalone", "playbook mongod_stop.yml")
    point.after("start-rs2", "shutdown")
    point.after("start-rs2", "playbook mongod_start.yml")
    assert killed == []
    point.after("start-rs2", "playbook mongod_start.yml")
    assert len(killed) == 1
    CrashPoint(None).after("start-rs2", "playbook")
    assert len(killed) == 1


class FakeStep(Step):
    """Records calls; `done` is the postcondition apply() establishes."""

    title = "fake"

    def __init__(self, step_id: str, fail_apply: bool = False) -> None:
        self.id = step_id  # type: ignore[misc]
        self.calls: list[str] = []
        self.done = False
        self.fail_apply = fail_apply

    def describe(self, ctx) -> list[str]:
        return [self.id]

    def precheck(self, ctx) -> None:
        self.calls.append("precheck")

    def apply(self, ctx) -> None:
        self.calls.append("apply")
        if self.fail_apply:
            raise OperationalError("the node said no")
        self.done = True

    def verify(self, ctx) -> None:
        self.calls.append("verify")
        self.check(self.done, "not done")


class FakeCtx:
    def __init__(self, tmp: Path) -> None:
        self.store = StateStore(tmp)
        self.state = RunState()
        self.events = EventBus()
        self.recorder = Recorder()
        self.events.subscribe(self.recorder)
        self.config = type("C", (), {"config_path": "split.yaml"})()

    def save(self) -> None:
        self.store.save(self.state)

    def progress(self, message: str) -> None:
        self.events.progress(message)


def test_runner_checkpoints_only_verified_steps_and_resumes_by_verifying(tmp_path: Path) -> None:
    ctx = FakeCtx(tmp_path)
    a, b = FakeStep("a"), FakeStep("b", fail_apply=True)
    with pytest.raises(StepFailed) as err:
        Runner(ctx, [a, b], gatekeeper=None).run()  # type: ignore[arg-type]
    assert "step b: the node said no" in err.value.message and "splitter run -c split.yaml" in err.value.hint
    kinds = [(e.type, e.step) for e in ctx.recorder.events]
    assert kinds == [(EventType.STEP_STARTED, "a"), (EventType.STEP_DONE, "a"), (EventType.STEP_STARTED, "b"),
                     (EventType.STEP_FAILED, "b")]
    saved = StateStore(tmp_path).load()
    assert saved.steps["a"].state == "done" and saved.steps["b"].state == "failed"
    assert saved.steps["b"].error == "the node said no"

    # Resume: a is skipped; b was fixed behind our back, so verify() passes and apply() is not repeated.
    a2, b2 = FakeStep("a"), FakeStep("b")
    b2.done = True
    ctx.state = saved
    Runner(ctx, [a2, b2], gatekeeper=None).run()  # type: ignore[arg-type]
    assert a2.calls == [] and b2.calls == ["verify"]
    assert StateStore(tmp_path).load().steps["b"].state == "done"


def test_runner_until_and_ask(tmp_path: Path) -> None:
    ctx = FakeCtx(tmp_path)
    steps = [FakeStep("a"), FakeStep("b"), FakeStep("c")]
    assert Runner(ctx, steps, gatekeeper=None, until="b").run() == ["a", "b"]  # type: ignore[arg-type]
    assert steps[2].calls == []
    with pytest.raises(Interrupted):
        Runner(ctx, steps, gatekeeper=None, ask=lambda step: False).run()  # type: ignore[arg-type]
    assert steps[2].calls == []
    assert StateStore(tmp_path).path.stat().st_mode & 0o777 == 0o600


def test_applier_retries_only_retryable_errors_bounded_and_audited(tmp_path: Path) -> None:
    from pymongo.errors import AutoReconnect, OperationFailure

    from splitter.cluster.applier import Applier
    from splitter.store.audit import AuditLog

    audit = AuditLog(tmp_path)
    events = EventBus()
    events.subscribe(audit.handle)
    # no real back-off sleeps in a unit test
    applier = Applier(connector=None, adapter=None, events=events, retries=3, sleep=lambda _s: None)  # type: ignore
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise AutoReconnect("primary stepped down")
        return "ok"

    assert applier._do("replSetReconfig: demo", "rs1", flaky) == "ok"
    records = audit.read()
    assert [r["event"] for r in records] == ["retry", "retry", "action"] and records[-1]["result"] == "ok"
    assert "primary stepped down" in records[0]["reason"] and records[-1]["attempts"] == 3

    def fatal():
        raise OperationFailure("not authorized", code=13)

    with pytest.raises(OperationalError):
        applier._do("setDefaultRWConcern", "rs1", fatal)
    assert audit.read()[-1]["result"] == "error" and not any(r.get("what") == "setDefaultRWConcern"
                                                              and r["event"] == "retry" for r in audit.read())

    def always():
        raise AutoReconnect("down")

    with pytest.raises(OperationalError):  # RetryableError after the bounded attempts
        applier._do("shutdown", "h", always)
    assert sum(1 for r in audit.read() if r.get("what") == "shutdown" and r["event"] == "retry") == 2

    dry_events = EventBus()
    dry_events.subscribe(AuditLog(tmp_path / "dry").handle)
    dry = Applier(connector=None, adapter=None, events=dry_events, dry_run=True)  # type: ignore
    assert dry._do("replSetReconfig", "rs1", always) is None and dry.planned == ["replSetReconfig @ rs1"]
    assert not (tmp_path / "dry" / "audit.jsonl").exists()

