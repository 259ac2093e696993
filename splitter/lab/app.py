"""An application for the lab: it never stops writing users of every residue, follows the published routing
document, and remembers every acknowledged write so that a test (or the demo) can check each one is on the set
that owns it, with its last value, and that nothing it deleted came back.

Touches: the sets it is given (reads `splitter.routing`; inserts, updates, deletes in `app.ledger`).

While the document says `fenced`, writes of the moving residues wait (re-reading it) instead of being sent:
that is the contract that lets a switch drain every write the old owner accepted before the new one opens.
Every operation is idempotent (insert of a fixed `_id`, `$set` of an absolute value, delete by `_id`), so an
operation whose outcome is unknown (an election, a fence) is simply sent again, to the set the routing names
then, until it is acknowledged: that is what a careful application does, and it makes the final check exact.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID, RoutingDocument, newest

FENCED = 121  # DocumentValidationFailure: the set refuses this residue during (or after) a switch
LEDGER = "ledger"


class RoutingFollower:
    """Polls the routing document on every known set and keeps the newest; `owner(key)` routes a key."""

    def __init__(self, clients: Mapping[str, MongoClient], home: str, poll: float = 0.1) -> None:
        self.clients = dict(clients)
        self.home = home
        self.poll = poll
        self._current: RoutingDocument | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="routing-follower", daemon=True)

    def _read(self, client: MongoClient) -> RoutingDocument | None:
        try:
            doc = client[DATABASE][COLLECTION].find_one({"_id": DOCUMENT_ID})
        except PyMongoError:
            return None
        return RoutingDocument.from_bson(doc) if doc else None

    def add(self, set_name: str, client: MongoClient) -> None:
        """Follow one more set. The dict is replaced, never changed in place: the polling thread iterates it."""
        self.clients = {**self.clients, set_name: client}

    def refresh(self) -> RoutingDocument | None:
        found = newest([self._read(c) for c in self.clients.values()])
        with self._lock:
            if found is not None and (self._current is None or found.epoch >= self._current.epoch):
                self._current = found
            return self._current

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.refresh()

    @property
    def current(self) -> RoutingDocument | None:
        with self._lock:
            return self._current

    def owner(self, key: int) -> str:
        doc = self.current
        return (doc.owner(key) if doc else None) or self.home

    def held(self, key: int) -> bool:
        """Whether writes of this key must wait: a switch of its residue is in progress (`fenced`)."""
        doc = self.current
        return bool(doc and doc.fenced and doc.is_moving(key))

    def start(self) -> RoutingFollower:
        self.refresh()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class OpRecord:
    """One application operation, from its first attempt to its acknowledgement."""

    kind: str
    user: int
    started: float
    ended: float
    acked_by: str
    attempts: int
    fenced: int  # attempts refused by a fence

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class AppCheck:
    """The final check: every acknowledged write on its owner with its last value; deletions stayed deleted."""

    checked: int = 0
    deleted_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Worker:
    users: list[int]
    rng: random.Random
    live: dict[str, int] = field(default_factory=dict)     # _id -> user, documents that exist
    seq: int = 0


class LabApp:
    """Writes `app.ledger` through `threads` threads, each owning its own users and documents (so the last value
    of each document is known exactly). `clients` maps set name -> client; `home` takes every key until the
    routing document says otherwise."""

    def __init__(self, clients: Mapping[str, MongoClient], home: str, *, threads: int = 2, users: int = 64,
                 interval: float = 0.005, poll: float = 0.1, database: str = "app", max_op_seconds: float = 120.0,
                 seed: int = 11) -> None:
        self.clients = dict(clients)
        self.follower = RoutingFollower(clients, home, poll)
        self.database = database
        self.interval = interval
        self.max_op_seconds = max_op_seconds
        self.values: dict[str, int | None] = {}       # _id -> last acknowledged value, None once deleted
        self.owner_of_doc: dict[str, int] = {}        # _id -> user (its routing key)
        self.ops: list[OpRecord] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        rng = random.Random(seed)
        self._workers = [_Worker([u for u in range(users) if u % threads == t], random.Random(rng.random()))
                         for t in range(threads)]
        self._threads = [threading.Thread(target=self._loop, args=(w,), name=f"lab-app-{i}", daemon=True)
                         for i, w in enumerate(self._workers)]

    # -- running ----------------------------------------------------------------------------------------
    def connect(self, set_name: str, client: MongoClient) -> None:
        """Add (or replace) a set's client: a client made before the set existed has dropped its seeds (they
        answered with another set name), so the application connects to a new set once it exists."""
        self.clients[set_name] = client
        self.follower.add(set_name, client)

    def start(self) -> LabApp:
        self.follower.start()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.max_op_seconds + 10)
        self.follower.stop()

    def __enter__(self) -> LabApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self, worker: _Worker) -> None:
        while not self._stop.is_set():
            try:
                self._one(worker)
            except _GaveUp as exc:
                with self._lock:
                    self.failures.append(str(exc))
            time.sleep(self.interval)

    def _one(self, worker: _Worker) -> None:
        rng = worker.rng
        roll = rng.random()
        if roll < 0.5 or len(worker.live) < 4:
            user = rng.choice(worker.users)
            worker.seq += 1
            _id = f"{user}-{worker.seq}"
            value = worker.seq
            self._send("insert", user, lambda c: _insert(c, _id, user, value))
            worker.live[_id] = user
            self._record(_id, user, value)
            return
        _id = rng.choice(sorted(worker.live))
        user = worker.live[_id]
        worker.seq += 1
        value = worker.seq
        if roll < 0.8:
            self._send("update", user, lambda c: c.update_one({"_id": _id}, {"$set": {"v": value}}))
            self._record(_id, user, value)
        elif roll < 0.9:
            self._send("find_and_modify", user, lambda c: c.find_one_and_update(
                {"_id": _id}, {"$set": {"v": value}}, return_document=ReturnDocument.AFTER))
            self._record(_id, user, value)
        else:
            self._send("delete", user, lambda c: c.delete_one({"_id": _id}))
            del worker.live[_id]
            self._record(_id, user, None)

    def _record(self, _id: str, user: int, value: int | None) -> None:
        with self._lock:
            self.values[_id] = value
            self.owner_of_doc[_id] = user

    def _send(self, kind: str, user: int, op: Callable) -> None:
        """Send `op` to the set that owns `user` now, again and again until one acknowledges it."""
        started = time.monotonic()
        attempts = fenced = 0
        while True:
            if self.follower.held(user):  # the contract: no write of a moving residue while a switch runs
                self._give_up_after(started, kind, user, TimeoutError("still fenced"))
                time.sleep(self.follower.poll / 2)
                self.follower.refresh()
                continue
            attempts += 1
            target = self.follower.owner(user)
            collection = self.clients[target][self.database][LEDGER]
            try:
                op(collection)
                break
            except OperationFailure as exc:
                if exc.code == FENCED:
                    fenced += 1
                    self.follower.refresh()
                else:
                    self._give_up_after(started, kind, user, exc)
            except PyMongoError as exc:  # an election, a restart, a network blip: the outcome is unknown
                self._give_up_after(started, kind, user, exc)
            time.sleep(min(0.05 * attempts, 0.5))
        with self._lock:
            self.ops.append(OpRecord(kind, user, started, time.monotonic(), target, attempts, fenced))

    def _give_up_after(self, started: float, kind: str, user: int, exc: Exception) -> None:
        if time.monotonic() - started > self.max_op_seconds:
            raise _GaveUp(f"{kind} of user {user} not acknowledged within {self.max_op_seconds:.0f}s: {exc}")

    # -- results ------------------------------------------------------------------------------------------
    @property
    def acknowledged(self) -> int:
        with self._lock:
            return len(self.ops)

    def stall(self, is_moving: Callable[[int], bool] | None = None) -> float:
        """The longest time one operation of the moving residues waited for its acknowledgement (fences and
        retries included): what a user of those keys saw at a switch."""
        doc = self.follower.current
        moving = is_moving or (doc.is_moving if doc else (lambda _u: True))
        with self._lock:
            return max((op.seconds for op in self.ops if moving(op.user)), default=0.0)

    def fenced_attempts(self) -> int:
        with self._lock:
            return sum(op.fenced for op in self.ops)

    def check(self, owner_of: Callable[[int], str] | None = None) -> AppCheck:
        """Every acknowledged write is on the set that owns its user (`owner_of`, default: the routing now) with
        its last value, and every deleted document is absent there."""
        route = owner_of or self.follower.owner
        result = AppCheck()
        with self._lock:
            values, users = dict(self.values), dict(self.owner_of_doc)
        by_set: dict[str, list[str]] = {}
        for _id, user in users.items():
            by_set.setdefault(route(user), []).append(_id)
        for set_name, ids in by_set.items():
            coll = self.clients[set_name][self.database][LEDGER]
            found = {d["_id"]: d.get("v") for d in coll.find({"_id": {"$in": ids}}, {"v": 1})}
            for _id in ids:
                want = values[_id]
                if want is None:
                    result.deleted_checked += 1
                    if _id in found:
                        result.problems.append(f"{_id} (user {users[_id]}) was deleted but is on {set_name}")
                    continue
                result.checked += 1
                if _id not in found:
                    result.problems.append(f"{_id} (user {users[_id]}) is missing on {set_name} (last value {want})")
                elif found[_id] != want:
                    result.problems.append(f"{_id} (user {users[_id]}) on {set_name} has v={found[_id]}, the "
                                           f"application's last acknowledged write was v={want}")
        return result


class _GaveUp(Exception):
    pass


def _insert(collection: Collection, _id: str, user: int, value: int) -> None:
    # A DuplicateKeyError means an earlier attempt whose acknowledgement was lost did insert it (or the
    # catch-up brought it here from the set that took it then).
    with contextlib.suppress(DuplicateKeyError):
        collection.insert_one({"_id": _id, "user_id": user, "v": value})
