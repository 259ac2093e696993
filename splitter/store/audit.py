"""The audit log: every event of every command, one JSON line each, appended to <state_dir>/audit.jsonl (0600).

It subscribes to the event bus; events never carry secrets (credentials are read from files and environment
variables into the connector only), so neither does this file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from splitter.events import Event
from splitter.store.atomic import now_iso
from splitter.store.files import StateFiles


class AuditLog:
    """Appends JSON lines to the state dir's audit file; `handle` is the event-bus subscriber."""

    def __init__(self, state_dir: Path) -> None:
        self.files = StateFiles(state_dir)
        self.path = self.files.audit
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({"at": now_iso(), **record}, default=str) + "\n"
        with self._lock:
            self.files.ensure()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(line)

    def handle(self, event: Event) -> None:
        self.write(event.to_json())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def actions(self) -> list[dict[str, Any]]:
        """The applier's actions (the `action` and `retry` events), oldest first."""
        return [r for r in self.read() if r.get("event") in ("action", "retry")]
