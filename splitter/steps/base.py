"""The step interface: describe() for the plan, precheck(), idempotent apply(), verify() as postcondition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from splitter.errors import StepFailed
from splitter.run_context import StepContext


@dataclass(frozen=True)
class GateSpec:
    id: str
    instruction: str


class Step:
    """Subclasses set id/title and override the four methods. apply() must be safe to run again."""

    id: ClassVar[str]
    title: ClassVar[str]
    reversible: ClassVar[bool] = True
    gate: ClassVar[GateSpec | None] = None
    placeholder: ClassVar[bool] = False

    def describe(self, ctx: StepContext) -> list[str]:
        raise NotImplementedError

    def precheck(self, ctx: StepContext) -> None:
        """Raise when the step cannot start. Must hold both fresh and after a crash inside apply()."""

    def apply(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def verify(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def fail(self, message: str, hint: str | None = None) -> StepFailed:
        return StepFailed(self.id, message, hint=hint)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise self.fail(message)
