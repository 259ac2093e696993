"""The change-stream reader thread (splitter/catchup/prefetch.py): order, tokens, errors, stop (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from splitter.catchup.prefetch import Prefetcher


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
