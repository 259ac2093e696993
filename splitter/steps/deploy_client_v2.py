"""Step 12: gate (the app routes by key), drain the catch-up, verify both halves, record the cutover."""

from __future__ import annotations

from splitter.engine.state import now_iso
from splitter.steps.base import GateSpec, Step
from splitter.steps.context import StepContext


class DeployClientV2(Step):
    id = "deploy-client-v2"
    title = "Gate: app routes by key; drain catch-up, verify, record the cutover"
    reversible = False
    gate = GateSpec("deploy-client-v2", "Deploy the client version that routes by key: {routing}. "
                    "Until you confirm, rs1's writes of {target}'s half keep being copied to {target}.")

    def describe(self, ctx: StepContext) -> list[str]:
        return ["gate deploy-client-v2: the app routes each key to its set",
                "record the cutover in the checkpoint (cleanup is allowed from then on)"]

    def apply(self, ctx: StepContext) -> None:
        ctx.state.cutover = {"at": now_iso(), "split_optime": ctx.state.data.get("split_optime")}
        ctx.save()

    def verify(self, ctx: StepContext) -> None:
        self.check(ctx.state.cutover is not None, "the cutover was not recorded")
