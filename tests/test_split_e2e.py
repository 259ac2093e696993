"""The whole split on real mongod: plan is read-only, run --yes reaches the target topology with a writer
that never fails, SIGKILL inside steps resumes to the same end state, --until/--step, rollback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from splitter.lab.lab import Lab
from tests.helpers import (
    Writer,
    assert_split_topology,
    counts,
    fingerprint,
    half_snapshot,
    rs1_client,
    rs2_client,
    run_cli,
    state_file,
)

pytestmark = pytest.mark.mongod


CLEANED = ("users", "events", "sessions", "writer")


def _ids(client, collection: str, remainder: int) -> set:
    return set(half_snapshot(client, collection, remainder))


def test_plan_changes_nothing_and_lists_every_step(shared_lab: Lab) -> None:
    before = fingerprint(shared_lab)
    result = run_cli("plan", "-c", str(shared_lab.layout.config_path), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [s["id"] for s in plan] == [
        "preflight", "prepare-arbiters", "add-arbiter-rs1", "deploy-client-v1", "stop-moving-nodes",
        "remove-moving-nodes", "start-standalone", "rewrite-replset-config", "stop-standalone", "start-rs2",
        "start-arbiter-rs2", "catch-up", "deploy-client-v2"]
    assert all({"id", "title", "actions", "reversible"} <= set(s) for s in plan)
    reversible = {s["id"]: s["reversible"] for s in plan}
    assert reversible["start-standalone"] and not reversible["rewrite-replset-config"]
    assert any("setDefaultRWConcern" in a for a in plan[2]["actions"])
    assert fingerprint(shared_lab) == before
    assert not state_file(shared_lab).exists() or "done" not in state_file(shared_lab).read_text()


def test_full_split_with_a_writer_that_never_fails_then_cleanup(fresh_lab: Lab) -> None:
    """Issue 3 (split, 0 failed writes) and issue 5 (cleanup leaves exactly each half) on one lab."""
    before = counts(rs1_client(fresh_lab))
    config = str(fresh_lab.layout.config_path)
    refused = run_cli("cleanup", "-c", config, "--set", "both")
    assert refused.returncode == 2 and "cutover" in refused.stderr, refused.stderr
    writer = Writer(rs1_client(fresh_lab)).start()
    try:
        result = run_cli("run", "-c", config, "--yes", "--until", "catch-up")
        assert result.returncode == 0, result.stdout + result.stderr
        writer.routed = True  # client v2 is deployed: rs2's half no longer goes to rs1
        result = run_cli("run", "-c", config, "--yes")
    finally:
        writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "split complete" in result.stdout
    assert_split_topology(fresh_lab)
    assert writer.failures == [], writer.failures[:5]
    assert len(writer.acknowledged) > 100
    assert counts(rs1_client(fresh_lab)) == before
    assert counts(rs2_client(fresh_lab)) == before
    on_rs1 = {d["_id"] for d in rs1_client(fresh_lab).app.writer.find({}, {"_id": 1})}
    assert set(writer.acknowledged) <= on_rs1
    # The catch-up brought rs2 every acknowledged write of its half.
    on_rs2 = {d["_id"] for d in rs2_client(fresh_lab).app.writer.find({}, {"_id": 1})}
    assert {n for n in writer.acknowledged if n % 2} <= on_rs2

    rs1, rs2 = rs1_client(fresh_lab), rs2_client(fresh_lab)
    even = {c: _ids(rs1, c, 0) for c in CLEANED}
    odd = {c: _ids(rs2, c, 1) for c in CLEANED}
    assert odd["writer"] == {n for n in writer.acknowledged if n % 2}  # caught up, then kept by rs2
    assert even["writer"] == {n for n in writer.acknowledged if n % 2 == 0}

    odd_on_rs1 = {c: _ids(rs1, c, 1) for c in CLEANED}
    even_on_rs2 = {c: _ids(rs2, c, 0) for c in CLEANED}  # the even writes after the cutover never went to rs2
    assert odd_on_rs1 == odd
    result = run_cli("cleanup", "-c", config, "--set", "both", "--json", "--batch-size", "300", "--exact-counts")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"]
    by_set = {s["set"]: s for s in report["sets"]}
    assert by_set["rs1"]["deleted"] == sum(len(odd[c]) for c in CLEANED)
    assert by_set["rs2"]["deleted"] == sum(len(even_on_rs2[c]) for c in CLEANED)
    assert by_set["rs1"]["kept_by_interlock"] == 0 and by_set["rs1"]["bad_keys"] == 0
    for c in CLEANED:
        assert _ids(rs1, c, 0) == even[c] and _ids(rs1, c, 1) == set(), c
        assert _ids(rs2, c, 1) == odd[c] and _ids(rs2, c, 0) == set(), c
        assert rs1.app[c].count_documents({}) == len(even[c])
        assert rs2.app[c].count_documents({}) == len(odd[c])

    again = run_cli("cleanup", "-c", config, "--set", "both", "--json")
    assert again.returncode == 0, again.stderr
    assert all(s["deleted"] == 0 for s in json.loads(again.stdout.strip().splitlines()[-1])["sets"])


def test_until_step_and_rollback_after_remove_moving_nodes(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    before = counts(rs1_client(fresh_lab))
    original = fingerprint(fresh_lab)

    declined = run_cli("run", "-c", config, "--step", stdin="n\n")
    assert declined.returncode == 0, declined.stderr
    assert "stopped before preflight" in declined.stdout + declined.stderr
    assert fingerprint(fresh_lab) == original

    result = run_cli("run", "-c", config, "--yes", "--until", "remove-moving-nodes")
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {s["id"]: s["state"] for s in json.loads(run_cli("status", "-c", config, "--json").stdout)["steps"]}
    assert steps["remove-moving-nodes"] == "done" and steps["start-standalone"] == "pending"

    # Ctrl-C inside start-standalone: exit 130, the checkpoint says where it stopped, rollback still works.
    with (fresh_lab.layout.root / "interrupted.log").open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config, "--yes"], stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and json.loads(state_file(fresh_lab).read_text())["steps"].get(
            "start-standalone", {}).get("state") != "running":
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (fresh_lab.layout.root / "interrupted.log").read_text()
    record = json.loads(state_file(fresh_lab).read_text())["steps"]["start-standalone"]
    assert record["state"] == "running" and record["error"] == "interrupted (Ctrl-C)"

    result = run_cli("rollback", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    version, _term, members = fingerprint(fresh_lab)
    assert sorted(state for _host, state in members) == ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]
    assert [h for h, _ in members] == [h for h, _ in original[2]]
    assert version > original[0]
    assert counts(rs1_client(fresh_lab)) == before
    with rs1_client(fresh_lab) as client:
        conf = client.admin.command("replSetGetConfig")["config"]
    assert all(m["votes"] == 1 and m["priority"] == 1 and not m.get("arbiterOnly") for m in conf["members"])
