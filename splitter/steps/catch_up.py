"""Step 11: replay rs1's writes of rs2's half since the split optime into rs2 (change stream)."""

from __future__ import annotations

from splitter.catchup import CatchUpWorker, PositionStore
from splitter.catchup.source import last_write_ts
from splitter.run_context import StepContext
from splitter.steps.base import Step
from splitter.store.records import OpTime

INITIAL_DRAIN_TIMEOUT = 1800.0


def make_worker(ctx: StepContext) -> CatchUpWorker:
    """The same worker, with the same position file, in step 11, during the last gate, and after a crash."""
    assert ctx.state.split is not None, "rewrite-replset-config records the split optime"
    return CatchUpWorker(ctx.rs1(), ctx.rs2(), ctx.config.routing, ctx.target_name, ctx.store.dir,
                         ctx.state.split.optime.ts, progress=ctx.progress, events=ctx.events)


class CatchUp(Step):
    id = "catch-up"
    title = "Catch up rs2 with rs1's writes of rs2's half since the split optime"
    reversible = False

    def describe(self, ctx: StepContext) -> list[str]:
        split = ctx.state.split
        start = f"{split.optime.t}:{split.optime.i + 1}" if split else "split optime + 1"
        return [f"change stream on {ctx.source_name} (routed databases {', '.join(ctx.config.routing.databases)}) "
                f"from {start}, showExpandedEvents, raw BSON, inserts of other halves filtered in the stream's $match",
                f"apply {ctx.target_name}'s half into {ctx.target_name} with appliers partitioned by _id (upsert/"
                "replace by _id, update description on its own half, key moved -> read by _id, delete by _id, "
                "index create/drop, drop/rename/$out); w: 1 batches, w: majority barrier before each position save",
                f"drain to {ctx.source_name}'s latest write now; keeps running while deploy-client-v2 waits"]

    def apply(self, ctx: StepContext) -> None:
        target = last_write_ts(ctx.rs1())
        ctx.state.catch_up_target = OpTime.of(target)
        ctx.save()
        stats = make_worker(ctx).drain(until=target, quiet_seconds=0, timeout=INITIAL_DRAIN_TIMEOUT)
        ctx.progress(f"catch-up: {stats.applied} applied, {stats.deleted} deleted, {stats.skipped} skipped "
                     f"({stats.rate_per_second:.0f}/s)")

    def verify(self, ctx: StepContext) -> None:
        position = PositionStore(ctx.store.dir, ctx.target_name).load()
        self.check(position is not None, "the catch-up has no saved position")
        assert ctx.state.split is not None and position is not None
        self.check(position.split_optime == ctx.state.split.optime.ts,
                   f"the catch-up position file starts at {position.split_optime}, not at this split's optime")
        # Past the split optime is not enough (it always is): the drain must have reached rs1's last write.
        target = ctx.state.catch_up_target
        self.check(target is not None and position.applied_through >= target.ts,
                   f"the catch-up applied through {position.applied_through}, short of {ctx.source_name}'s write "
                   f"{target} it was drained to")
