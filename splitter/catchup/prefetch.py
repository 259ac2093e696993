"""Reads the change stream ahead of the apply loop, in a thread of its own.

Touches: only the stream it is given, and only from its thread while it runs (`stop` joins it before the worker
closes the stream). While the worker translates and hands out one part of the stream, the server (and the
network) produce the next: before, the worker's one thread sat idle through every getMore.

Events come out in stream order with the resume token before and after each, so the worker saves exactly the
positions it saved when it read the stream itself. A batch the server sent is handed over whole: `try_next` for
its first and last change, the ones between taken as they are (`_rest_of_batch`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.change_stream import ChangeStream

Token = Mapping[str, Any] | None
Item = tuple[Mapping[str, Any] | None, Token]


class Prefetcher:
    """`next()` returns (change or None when the stream had nothing, token before it, token after it)."""

    def __init__(self, stream: Any, token_of: Callable[[Any], Token], *, chunk: int = 500, depth: int = 8,
                 name: str = "catch-up-reader") -> None:
        self._stream, self._token_of, self._chunk_size = stream, token_of, chunk
        self._queue: queue.Queue[list[Item] | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._chunk: list[Item] = []
        self._at = 0
        self.token: Token = token_of(stream)  # after the last event handed out
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Prefetcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop reading and wait for the thread (at most one getMore, `max_await_ms`, is in flight)."""
        self._stop.set()
        self._thread.join(timeout)

    def next(self) -> tuple[Mapping[str, Any] | None, Token, Token]:
        """The next change in stream order; raises what the stream raised."""
        if self._at >= len(self._chunk):
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            self._chunk, self._at = item, 0
        change, after = self._chunk[self._at]
        self._at += 1
        before, self.token = self.token, after
        return change, before, after

    def _run(self) -> None:
        chunk: list[Item] = []
        try:
            while not self._stop.is_set():
                change = self._stream.try_next()
                chunk.append((change, self._token_of(self._stream)))
                if change is not None:
                    chunk.extend(_rest_of_batch(self._stream))
                # Hand over before a getMore (which may wait for new events): nothing read waits behind it.
                if change is None or len(chunk) >= self._chunk_size or not _buffered(self._stream):
                    self._put(chunk)
                    chunk = []
        except BaseException as exc:  # handed to the worker's thread, which retries or fails as before
            self._put(exc)

    def _put(self, item: list[Item] | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


def resume_token_of(stream: Any) -> Token:
    """The stream's resume token. pymongo's `resume_token` deep-copies it, ~76 us per event here, the largest
    cost per event under a bulk writer; a token is never changed once received, so a reference is enough."""
    token = getattr(stream, "_resume_token", None) if isinstance(stream, ChangeStream) else None
    return token if token is not None else stream.resume_token


def _rest_of_batch(stream: Any) -> list[Item]:
    """The changes already fetched with the last getMore but one, each with its own `_id` as the token after it:
    what `try_next` would return one call at a time, without its per-event checks (a sixth of the reader's time
    under a bulk writer). The batch's last change is left to `try_next`, which gives it the batch's
    postBatchResumeToken and keeps the stream's own resume token right for its next getMore."""
    data = getattr(getattr(stream, "_cursor", None), "_data", None)
    if data is None:  # not a pymongo stream (a test double): one change at a time
        return []
    rest: list[Item] = []
    while len(data) > 1:
        change = data.popleft()
        rest.append((change, change["_id"]))
    return rest


def _buffered(stream: Any) -> bool:
    """Whether the next change is already on this side (no getMore needed); False when unknown."""
    cursor = getattr(stream, "_cursor", None)
    has_next = getattr(cursor, "_has_next", None)
    return bool(has_next()) if callable(has_next) else False
