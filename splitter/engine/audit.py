"""JSON-lines audit log of every action the applier takes: what, where, result, duration."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from splitter.engine.state import ensure_state_dir, now_iso

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    """Appends one line per action to <state_dir>/audit.jsonl (mode 0600). Never receives secrets."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / AUDIT_FILE

    def write(self, record: dict[str, Any]) -> None:
        ensure_state_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(json.dumps({"at": now_iso(), **record}, default=str) + "\n")

    @contextmanager
    def action(self, what: str, where: str, **detail: Any) -> Iterator[dict[str, Any]]:
        """Times the block and logs it with result ok / the error; `extra` may be filled by the caller."""
        started = time.monotonic()
        extra: dict[str, Any] = {}
        try:
            yield extra
        except BaseException as exc:
            self.write({"action": what, "where": where, **detail, **extra, "result": "error",
                        "error": f"{type(exc).__name__}: {exc}", "seconds": round(time.monotonic() - started, 3)})
            raise
        self.write({"action": what, "where": where, **detail, **extra, "result": "ok",
                    "seconds": round(time.monotonic() - started, 3)})

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
