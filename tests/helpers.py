"""Shared test helpers: run the CLI as a real process, a background writer, cluster fingerprints."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.lab.lab import Lab


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m splitter ARGS` in a child process (so SIGKILL tests kill the orchestrator, not pytest)."""
    return subprocess.run([sys.executable, "-m", "splitter", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=stdin, timeout=timeout, check=False)


def rs1_client(lab: Lab) -> MongoClient:
    """How the application connects after deploy-client-v1: seed list node1 + node2 only."""
    seeds = ",".join(lab.layout.host(n).host for n in ("node1", "node2"))
    return MongoClient(f"mongodb://{seeds}/?replicaSet=rs1&retryWrites=true", serverSelectionTimeoutMS=30000)


def rs2_client(lab: Lab) -> MongoClient:
    seeds = ",".join(lab.layout.host(n).host for n in ("node3", "node4"))
    return MongoClient(f"mongodb://{seeds}/?replicaSet=rs2", serverSelectionTimeoutMS=30000)


def fingerprint(lab: Lab) -> tuple:
    """rs1's config version and term and every member's state: must not move under a read-only command."""
    with MongoClient(lab.layout.host("node1").host, directConnection=True) as client:
        config = client.admin.command("replSetGetConfig")["config"]
        status = client.admin.command("replSetGetStatus")
    return (config["version"], config.get("term"), tuple(sorted((m["name"], m["stateStr"])
                                                                 for m in status["members"])))


class BackgroundWriter:
    """Thread plumbing shared by the test writers: call write(n) until stopped, count failures."""

    interval: float
    failures: list[str]
    _stop: threading.Event
    _thread: threading.Thread | None

    def write(self, n: int) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                self.write(n)
            except PyMongoError as exc:
                self.failures.append(f"{n}: {type(exc).__name__}: {exc}")
            n += 1
            time.sleep(self.interval)

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)


@dataclass
class Writer(BackgroundWriter):
    """Inserts into rs1 continuously (retryable writes) and counts acknowledged and failed writes.
    Once `routed` is set it behaves like client v2 towards rs1: only rs1's half (even user_id) goes there."""

    client: MongoClient
    collection: str = "writer"
    interval: float = 0.02
    routed: bool = False
    acknowledged: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def write(self, n: int) -> None:
        if self.routed and n % 2:
            return
        self.client.app[self.collection].insert_one({"_id": n, "user_id": n, "at": time.time()})
        self.acknowledged.append(n)


def state_file(lab: Lab) -> Path:
    return lab.layout.root / "state" / "state.json"


@dataclass
class MixedWriter(BackgroundWriter):
    """The old application: inserts, updates (some moving a document to the other half), replaces and deletes
    documents of both halves in app.users/events/sessions through rs1. Remembers what rs1 acknowledged."""

    client: MongoClient
    seed: int = 1
    interval: float = 0.005
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)
    touched: dict[str, set] = field(default_factory=lambda: {c: set() for c in ("users", "events", "sessions")})
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def write(self, n: int) -> None:
        rng = self._rng
        name = rng.choice(list(self.touched))
        coll = self.client.app[name]
        op = rng.random()
        if op < 0.45 or not self.touched[name]:
            _id = f"w{self.seed}-{n}"
            coll.insert_one({"_id": _id, "user_id": rng.randrange(10_000), "n": n})
        else:
            _id = rng.choice(sorted(self.touched[name], key=str))
            if op < 0.65:
                coll.update_one({"_id": _id}, {"$set": {"n": n, "updated": True}, "$inc": {"edits": 1}})
            elif op < 0.75:
                coll.update_one({"_id": _id}, {"$inc": {"user_id": 1}})  # moves it to the other half
            elif op < 0.85:
                coll.replace_one({"_id": _id}, {"user_id": rng.randrange(10_000), "replaced": n})
            else:
                coll.delete_one({"_id": _id})
        self.touched[name].add(_id)
        self.acknowledged += 1

    def start(self) -> MixedWriter:
        self._rng = random.Random(self.seed)
        for name in self.touched:  # existing documents of both halves are fair game too
            self.touched[name].update(d["_id"] for d in self.client.app[name].find({}, {"_id": 1}).limit(200))
        return super().start()


def half_snapshot(client: MongoClient, collection: str, remainder: int) -> dict:
    """_id -> document of one half (integer user_id with that remainder)."""
    query = {"user_id": {"$type": ["int", "long"], "$mod": [2, remainder]}}
    return {d["_id"]: d for d in client.app[collection].find(query)}


def config_copy(lab: Lab, directory: Path, **changes: object) -> Path:
    """The lab's split.yaml written into `directory` with its own state dir there (and `changes` applied on the
    top level): commands run against the lab's cluster without touching the lab's own state."""
    import yaml

    config = yaml.safe_load(lab.layout.config_path.read_text())
    config.update(inventory=str(lab.layout.inventory_path), state_dir=str(directory / "state"), **changes)
    path = directory / "split.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def counts(client) -> dict[str, int]:
    """Documents per loaded collection (users, events, sessions)."""
    return {c: client.app[c].count_documents({}) for c in ("users", "events", "sessions")}


def assert_split_topology(lab: Lab) -> None:
    """rs1 = node1, node2, arbiter1 and rs2 = node3, node4, arbiter2, each with a PRIMARY and a SECONDARY."""
    states = {p.name: p.state for p in lab.processes()}
    assert sorted(states[n] for n in ("node1", "node2", "arbiter1")) == ["rs1/ARBITER", "rs1/PRIMARY",
                                                                         "rs1/SECONDARY"]
    assert sorted(states[n] for n in ("node3", "node4", "arbiter2")) == ["rs2/ARBITER", "rs2/PRIMARY",
                                                                         "rs2/SECONDARY"]
