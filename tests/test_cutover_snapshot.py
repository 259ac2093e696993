"""Snapshot reads of the cutover's verification on real mongod: a collection larger than one batch is read
whole (the getMores run in the find's own session)."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from splitter.cutover import snapshot
from splitter.lab.lab import Lab
from splitter.lab.layout import DATABASE
from splitter.routing import Routing

ROUTING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={DATABASE: "user_id"})


@pytest.mark.mongod
def test_snapshot_reads_span_several_batches(shared_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "BATCH", 100)  # the lab's collections hold thousands: many getMores
    with MongoClient(shared_lab.layout.connection_string) as client:
        at = client.admin.command("ping")["operationTime"]
        expected = client[DATABASE].events.count_documents(ROUTING.half_filter("user_id", "rs2"))
        reader = snapshot._snapshot_docs(client, DATABASE, "events", ROUTING.half_filter("user_id", "rs2"), at)
        docs = [next(reader)]
        # Another user of the client (the app, a status thread) takes a pooled session meanwhile: the getMores
        # must still run in the find's own session.
        with client.start_session() as other:
            client.admin.command("ping", session=other)
            docs += list(reader)
        assert expected > 300 and len(docs) == expected
        diff = snapshot.compare_at(client, at, client, at, ROUTING, "rs2")
        assert diff.ok and diff.counts[f"{DATABASE}.events"] == (expected, expected)
