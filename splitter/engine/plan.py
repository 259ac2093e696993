"""`splitter plan`: a read-only preflight, then every step with its exact actions and reversibility."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from splitter.run_context import StepContext
from splitter.steps.base import Step
from splitter.steps.registry import POINT_OF_NO_RETURN


@dataclass(frozen=True)
class PlannedStep:
    id: str
    title: str
    actions: list[str]
    reversible: bool
    state: str
    gate: str | None
    placeholder: bool

    def to_json(self) -> dict:
        return asdict(self)


def build_plan(ctx: StepContext, steps: list[Step]) -> list[PlannedStep]:
    """Runs the preflight checks if the run has not passed them yet; never writes (the applier is dry)."""
    assert ctx.applier.dry_run, "plan must use a dry-run applier"
    if ctx.state.step(steps[0].id).state != "done":
        steps[0].precheck(ctx)
    plan = []
    for step in steps:
        actions = step.describe(ctx)
        if step.id == POINT_OF_NO_RETURN:
            actions = [*actions, "(steps before this one can be undone with `splitter rollback`)"]
        plan.append(PlannedStep(step.id, step.title, actions, step.reversible, ctx.state.step(step.id).state,
                                step.gate.id if step.gate else None, step.placeholder))
    return plan
