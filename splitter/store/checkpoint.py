"""The checkpoint: one JSON file per state dir (state.json), written atomically, mode 0600.

It holds the state of every step and the typed records steps hand each other (records.py). It is read and
validated as a whole: a file that does not parse as a checkpoint is an error naming the file, never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from splitter.errors import OperationalError
from splitter.store.atomic import atomic_write_json
from splitter.store.files import StateFiles
from splitter.store.records import (
    CutoverRecord,
    GatePass,
    OpTime,
    OriginalConfig,
    PointOfNoReturn,
    SplitPoint,
    TargetConfig,
)

FORMAT = 2
StepState = Literal["pending", "running", "done", "failed"]
STEP_STATES: tuple[str, ...] = ("pending", "running", "done", "failed")


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: StepState = "pending"
    started: str | None = None
    finished: str | None = None
    attempts: int = 0
    error: str | None = None


class RunState(BaseModel):
    """Everything the run must remember across crashes."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    routing_pin: dict[str, Any] | None = None
    original_config: OriginalConfig | None = None
    oplog_window: dict[str, float] = Field(default_factory=dict)
    split: SplitPoint | None = None
    catch_up_target: OpTime | None = None  # rs1's last write when the catch-up step drained: verify wants it
    target_config: TargetConfig | None = None
    point_of_no_return: PointOfNoReturn | None = None
    gates: dict[str, GatePass] = Field(default_factory=dict)
    waiting_gate: str | None = None
    cutover: CutoverRecord | None = None

    def step(self, step_id: str) -> StepRecord:
        return self.steps.setdefault(step_id, StepRecord())

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunState:
        return cls.model_validate(doc)


class StateStore:
    """Loads and saves the RunState of a state dir."""

    def __init__(self, files: StateFiles | Path) -> None:
        self.files = files if isinstance(files, StateFiles) else StateFiles(files)
        self.path = self.files.checkpoint

    @property
    def dir(self) -> Path:
        return self.files.root

    def load(self) -> RunState:
        if not self.path.exists():
            return RunState()
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise OperationalError(f"the checkpoint {self.path} cannot be read: {exc}",
                                   hint="it is written atomically, so this means it was edited or damaged by hand; "
                                        "restore it from a backup") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format", 1) if isinstance(doc, dict) else None
            raise OperationalError(f"the checkpoint {self.path} has format {found!r}; this splitter reads format "
                                   f"{FORMAT}", hint="finish that split with the splitter version that started it")
        try:
            return RunState.from_json(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise OperationalError(f"the checkpoint {self.path} is not valid at {where}: {first['msg']}",
                                   hint="it is written atomically, so this means it was edited by hand") from exc

    def save(self, state: RunState) -> None:
        self.files.ensure()
        atomic_write_json(self.path, state.to_json())
