"""The lab application's routing follower (splitter/lab/app.py): sets added while it polls (pure, no mongod)."""

from __future__ import annotations

import threading
import time
from typing import Any

from splitter.lab.app import RoutingFollower


class NoDocument:
    """A client whose routing collection is empty (every lookup returns nothing), a little slowly."""

    def __getitem__(self, _name: str) -> Any:
        return self

    def find_one(self, *_args: Any, **_kwargs: Any) -> None:
        time.sleep(0.0005)
        return None


def test_sets_added_while_the_follower_polls_do_not_kill_it() -> None:
    """`LabApp.connect` adds a set when it exists (the story's rs3); the polling thread iterated the same dict and
    died with "dictionary changed size during iteration" (seen in a cutover scenario), leaving the app unrouted."""
    errors: list[BaseException] = []
    threading.excepthook, before = (lambda args: errors.append(args.exc_value)), threading.excepthook
    follower = RoutingFollower({f"rs{i}": NoDocument() for i in range(20)}, "rs0", poll=0).start()  # type: ignore[misc]
    try:
        for i in range(20, 400):
            follower.add(f"rs{i}", NoDocument())  # type: ignore[arg-type]
            time.sleep(0.0002)
        assert follower._thread.is_alive() and not errors
        assert len(follower.clients) == 400
    finally:
        follower.stop()
        threading.excepthook = before
