"""The checkpoint: one JSON file per state dir, written atomically (tmp + fsync + rename), mode 0600."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
STEP_STATES = ("pending", "running", "done", "failed")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ensure_state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write JSON so a reader (or a crash) only ever sees the old or the new file, never a torn one.
    `durable=False` skips the fsyncs: the file still survives a kill -9 (the page cache outlives the process),
    only a power cut may bring back the previous version."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class StepRecord:
    state: str = "pending"
    started: str | None = None
    finished: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class RunState:
    """Everything the run must remember across crashes. `data` holds step outputs (e.g. split optime)."""

    steps: dict[str, StepRecord] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    waiting_gate: str | None = None
    cutover: dict[str, Any] | None = None

    def step(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    def to_json(self) -> dict[str, Any]:
        return {"steps": {k: vars(v) for k, v in self.steps.items()}, "data": self.data,
                "waiting_gate": self.waiting_gate, "cutover": self.cutover}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunState:
        return cls(steps={k: StepRecord(**v) for k, v in doc.get("steps", {}).items()},
                   data=doc.get("data", {}), waiting_gate=doc.get("waiting_gate"), cutover=doc.get("cutover"))


class StateStore:
    """Loads and saves the RunState in a state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE

    def load(self) -> RunState:
        if not self.path.exists():
            return RunState()
        return RunState.from_json(json.loads(self.path.read_text()))

    def save(self, state: RunState) -> None:
        ensure_state_dir(self.dir)
        atomic_write_json(self.path, state.to_json())


def load_state(state_dir: Path) -> RunState:
    return StateStore(state_dir).load()
