"""Step 8: shut the standalone nodes down cleanly."""

from __future__ import annotations

from splitter.cluster.shutdown import QUIESCE_SECS
from splitter.run_context import StepContext
from splitter.steps.base import Step


class StopStandalone(Step):
    id = "stop-standalone"
    title = "Stop the standalone nodes"
    reversible = False

    def describe(self, ctx: StepContext) -> list[str]:
        return [f"shutdown on {', '.join(ctx.maintenance_host(n) for n in ctx.move_names)}, "
                f"then playbook mongod_stop.yml on {', '.join(ctx.move_names)}"]

    def apply(self, ctx: StepContext) -> None:
        for name in ctx.move_names:
            host = ctx.maintenance_host(name)
            if ctx.inspector.reachable(host):
                ctx.applier.shutdown(host, timeout_secs=QUIESCE_SECS)
        ctx.applier.playbook("mongod_stop.yml", ctx.move_names)

    def verify(self, ctx: StepContext) -> None:
        for name in ctx.move_names:
            self.check(not ctx.inspector.reachable(ctx.maintenance_host(name)), f"{name} standalone still answers")
