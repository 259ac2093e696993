"""Step 11: replay rs1's writes of rs2's half since the split optime into rs2 (change stream)."""

from __future__ import annotations

from splitter.steps.base import Step
from splitter.steps.context import StepContext


class CatchUp(Step):
    id = "catch-up"
    title = "Catch up rs2 with rs1's writes of rs2's half since the split optime"
    reversible = False
    placeholder = True

    def describe(self, ctx: StepContext) -> list[str]:
        return ["(placeholder until the catch-up worker lands) change stream on rs1 from the split optime + 1"]

    def apply(self, ctx: StepContext) -> None:
        return None

    def verify(self, ctx: StepContext) -> None:
        self.check("split_optime" in ctx.state.data, "no split optime recorded")
