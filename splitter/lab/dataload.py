"""Deterministic sample data for the lab: app.users, app.events, app.sessions keyed by integer user_id."""

from __future__ import annotations

import random

from pymongo import ASCENDING, MongoClient
from pymongo.write_concern import WriteConcern

from splitter.lab.layout import COLLECTIONS, DATABASE, KEY

BATCH = 2000


def plan_counts(total: int) -> dict[str, int]:
    users = max(total // 5, 1) if total else 0
    events = total // 2
    return {"users": users, "events": events, "sessions": max(total - users - events, 0)}


def load_documents(client: MongoClient, total: int, seed: int = 7) -> dict[str, int]:
    """Insert `total` documents across the three collections (w: majority); returns counts per collection."""
    rng = random.Random(seed)
    counts = plan_counts(total)
    db = client.get_database(DATABASE, write_concern=WriteConcern("majority"))
    n_users = max(counts["users"], 1)
    for name in COLLECTIONS:
        db[name].create_index([(KEY, ASCENDING)])
    makers = {
        "users": lambda i: {"_id": i, KEY: i, "name": f"user-{i}", "plan": rng.choice(["free", "pro"])},
        "events": lambda i: {KEY: rng.randrange(n_users), "seq": i, "kind": rng.choice(["view", "click", "buy"]),
                             "payload": "x" * rng.randrange(20, 120)},
        "sessions": lambda i: {KEY: rng.randrange(n_users), "seq": i, "ttl": rng.randrange(60, 3600)},
    }
    for name in COLLECTIONS:
        make = makers[name]
        for start in range(0, counts[name], BATCH):
            batch = [make(i) for i in range(start, min(start + BATCH, counts[name]))]
            db[name].insert_many(batch, ordered=False)
    return counts
