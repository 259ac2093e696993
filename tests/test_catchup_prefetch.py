"""The change-stream reader thread (splitter/catchup/prefetch.py): order, tokens, errors, stop (pure logic), and
what it hands out from a real change stream."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import AutoReconnect

from splitter.catchup.prefetch import Prefetcher
from splitter.catchup.rawdoc import DOCUMENT_CLASS
from splitter.lab.lab import Lab


class Stream:
    """try_next() hands out `events` then None (idle) forever; `fail_at` raises at that read."""

    def __init__(self, events: list[int], fail_at: int | None = None) -> None:
        self.events, self.fail_at, self.reads = list(events), fail_at, 0
        self.resume_token: dict[str, Any] = {"_data": "start"}

    def try_next(self) -> dict[str, Any] | None:
        self.reads += 1
        if self.fail_at is not None and self.reads > self.fail_at:
            raise AutoReconnect("connection reset (fake)")
        if not self.events:
            self.resume_token = {"_data": "idle"}
            return None
        n = self.events.pop(0)
        self.resume_token = {"_data": f"t{n}"}
        return {"n": n}


def token(stream: Stream) -> dict[str, Any]:
    return stream.resume_token


def test_changes_come_in_order_with_the_token_before_and_after_each() -> None:
    reader = Prefetcher(Stream(list(range(1200))), token, chunk=7).start()
    try:
        before = {"_data": "start"}
        for n in range(1200):
            change, was, after = reader.next()
            assert change == {"n": n} and was == before and after == {"_data": f"t{n}"}
            before = after
        assert reader.next() == (None, {"_data": "t1199"}, {"_data": "idle"})  # drained: the idle token
        assert reader.token == {"_data": "idle"}
    finally:
        reader.stop()


def test_the_stream_s_error_reaches_the_worker_after_what_was_read_before_it() -> None:
    reader = Prefetcher(Stream(list(range(10)), fail_at=5), token, chunk=3).start()
    try:
        assert [reader.next()[0] for _ in range(5)] == [{"n": n} for n in range(5)]
        with pytest.raises(AutoReconnect):
            reader.next()
    finally:
        reader.stop()


def test_stop_ends_the_thread_even_when_the_worker_stopped_taking() -> None:
    reader = Prefetcher(Stream(list(range(100_000))), token, chunk=10, depth=2).start()
    reader.next()
    reader.stop(timeout=5)
    assert not reader._thread.is_alive()


class BatchedStream(Stream):
    """Like pymongo's change stream: a getMore fetches a whole batch into `_cursor._data`; `try_next` pops one
    change and sets the token (its `_id`, the batch's postBatchResumeToken for the batch's last change)."""

    class Cursor:
        def __init__(self) -> None:
            self._data: deque[dict[str, Any]] = deque()

    def __init__(self, batches: list[int]) -> None:
        super().__init__([])
        self._cursor, self.batches, self.next_n = self.Cursor(), list(batches), 0
        self.changes_returned = 0  # by try_next itself

    def try_next(self) -> dict[str, Any] | None:
        self.reads += 1
        if not self._cursor._data and self.batches:
            for _ in range(self.batches.pop(0)):
                self._cursor._data.append({"_id": {"_data": f"t{self.next_n}"}, "n": self.next_n})
                self.next_n += 1
        if not self._cursor._data:
            self.resume_token = {"_data": "idle"}
            return None
        change = self._cursor._data.popleft()
        self.resume_token = change["_id"] if self._cursor._data else {"_data": f"pbrt{change['n']}"}
        self.changes_returned += 1
        return change


def test_a_fetched_batch_is_handed_out_without_a_try_next_per_change() -> None:
    stream = BatchedStream([5, 1, 3])
    reader = Prefetcher(stream, token).start()
    try:
        seen = [reader.next() for _ in range(9)]
        assert [change["n"] for change, _before, _after in seen] == list(range(9))
        # Each change's own `_id` is the token after it, except the last of a batch: the postBatchResumeToken.
        assert [after["_data"] for _change, _before, after in seen] == [
            "t0", "t1", "t2", "t3", "pbrt4", "pbrt5", "t6", "t7", "pbrt8"]
        assert reader.next()[0] is None
    finally:
        reader.stop()
    # try_next returned the first and the last change of each batch; the ones between were taken from the batch
    assert stream.changes_returned == 2 + 1 + 2
    assert stream.resume_token == {"_data": "idle"}


@pytest.mark.mongod
def test_on_a_real_stream_the_reader_hands_out_what_try_next_would(shared_lab: Lab) -> None:
    """Two streams from the same optime over the same writes, small batches: one read through the Prefetcher,
    one with try_next per change. Same changes, byte for byte, and the same token after each."""
    uri = shared_lab.layout.connection_string
    with MongoClient(uri, document_class=DOCUMENT_CLASS, tz_aware=True) as client:
        scratch = client["prefetch_probe"]
        try:
            start = client.admin.command("hello")["lastWrite"]["opTime"]["ts"]
            for first in range(0, 300, 50):
                scratch.docs.insert_many([{"_id": n, "v": n % 7} for n in range(first, first + 50)])
            scratch.docs.update_many({"v": 3}, {"$inc": {"v": 10}})
            expected = _read(client, start, lambda stream: _one_by_one(stream, 300 + 43))
            got = _read(client, start, lambda stream: _prefetched(stream, 300 + 43))
        finally:
            client.drop_database("prefetch_probe")
    assert len(got) == 343 and [c.raw for c, _t in got] == [c.raw for c, _t in expected]
    assert [t for _c, t in got] == [t for _c, t in expected]


def _read(client: MongoClient, start: Any, read: Any) -> list[tuple[Any, Any]]:
    with client.watch([{"$match": {"ns.db": "prefetch_probe"}}], start_at_operation_time=start,
                      batch_size=40, max_await_time_ms=200) as stream:
        return read(stream)


def _one_by_one(stream: Any, n: int) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    while len(out) < n:
        change = stream.try_next()
        if change is not None:
            out.append((change, dict(stream.resume_token)))
    return out


def _prefetched(stream: Any, n: int) -> list[tuple[Any, Any]]:
    reader = Prefetcher(stream, lambda s: s.resume_token).start()
    out: list[tuple[Any, Any]] = []
    try:
        while len(out) < n:
            change, _before, after = reader.next()
            if change is not None:
                out.append((change, dict(after)))
    finally:
        reader.stop()
    return out
