"""Cleanup on the real result of `splitter run`: afterwards rs1 holds exactly its half (loaded + written)
and rs2 exactly its half, checked by _id against what was there before; a second pass deletes nothing."""

from __future__ import annotations

import json

import pytest

from splitter.lab.lab import Lab
from tests.helpers import Writer, half_snapshot, rs1_client, rs2_client, run_cli

pytestmark = pytest.mark.mongod
COLLECTIONS = ("users", "events", "sessions", "writer")


def _ids(client, collection: str, remainder: int) -> set:
    return set(half_snapshot(client, collection, remainder))


def test_cleanup_both_sets_after_a_real_split(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    assert run_cli("cleanup", "-c", config, "--set", "both").returncode == 1  # refused before the cutover
    writer = Writer(rs1_client(fresh_lab)).start()
    try:
        assert run_cli("run", "-c", config, "--yes", "--until", "catch-up").returncode == 0
        writer.routed = True
        result = run_cli("run", "-c", config, "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        writer.stop()
    rs1, rs2 = rs1_client(fresh_lab), rs2_client(fresh_lab)
    even = {c: _ids(rs1, c, 0) for c in COLLECTIONS}
    odd = {c: _ids(rs2, c, 1) for c in COLLECTIONS}
    assert odd["writer"] == {n for n in writer.acknowledged if n % 2}  # caught up, then kept by rs2
    assert even["writer"] == {n for n in writer.acknowledged if n % 2 == 0}

    result = run_cli("cleanup", "-c", config, "--set", "both", "--json", "--batch-size", "300")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"]
    by_set = {s["set"]: s for s in report["sets"]}
    assert by_set["rs1"]["deleted"] == sum(len(odd[c]) for c in COLLECTIONS)
    assert by_set["rs2"]["deleted"] == sum(len(even[c]) for c in COLLECTIONS)
    assert by_set["rs1"]["kept_by_interlock"] == 0 and by_set["rs1"]["bad_keys"] == 0
    for c in COLLECTIONS:
        assert _ids(rs1, c, 0) == even[c] and _ids(rs1, c, 1) == set(), c
        assert _ids(rs2, c, 1) == odd[c] and _ids(rs2, c, 0) == set(), c
        assert rs1.app[c].count_documents({}) == len(even[c])
        assert rs2.app[c].count_documents({}) == len(odd[c])

    again = run_cli("cleanup", "-c", config, "--set", "both", "--json")
    assert again.returncode == 0, again.stderr
    assert all(s["deleted"] == 0 for s in json.loads(again.stdout.strip().splitlines()[-1])["sets"])
