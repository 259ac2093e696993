"""Step 1: empty dbpaths for arbiter 1 and arbiter 2."""

from __future__ import annotations

from splitter.run_context import StepContext
from splitter.steps.add_arbiter_rs1 import source_arbiter_kept
from splitter.steps.base import Step


class PrepareArbiters(Step):
    id = "prepare-arbiters"
    title = "Prepare empty dbpaths for both arbiters"

    def _names(self, ctx: StepContext) -> list[str]:
        if source_arbiter_kept(ctx):  # the source set's own arbiter stays; only the new set's is prepared
            return [ctx.config.arbiters.target.name]
        return [ctx.config.arbiters.source.name, ctx.config.arbiters.target.name]

    def describe(self, ctx: StepContext) -> list[str]:
        arbiters = {a.name: a for a in (ctx.config.arbiters.source, ctx.config.arbiters.target)}
        listing = " and ".join(f"{n} ({arbiters[n].dbpath})" for n in self._names(ctx))
        return [f"playbook prepare_dbpath.yml on {listing}: create, mode 0700, refuse if not empty"]

    def apply(self, ctx: StepContext) -> None:
        ctx.applier.playbook("prepare_dbpath.yml", self._names(ctx))

    def verify(self, ctx: StepContext) -> None:
        # Same playbook: it only creates what is missing and fails on a non-empty dbpath; read-only otherwise.
        ctx.applier.adapter.run("prepare_dbpath.yml", self._names(ctx))
