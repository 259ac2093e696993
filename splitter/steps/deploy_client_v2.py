"""Step 12: gate (the app routes by key) while the catch-up keeps running; then drain, verify, record cutover."""

from __future__ import annotations

from splitter.catchup import BackgroundCatchUp
from splitter.config import parse_duration
from splitter.steps.base import GateSpec, Step
from splitter.steps.catch_up import make_worker
from splitter.steps.context import StepContext
from splitter.store.records import CutoverRecord
from splitter.verify import compare_sets

DRAIN_TIMEOUT = 900.0


class DeployClientV2(Step):
    id = "deploy-client-v2"
    title = "Gate: app routes by key; drain catch-up, verify, record the cutover"
    reversible = False
    gate = GateSpec("deploy-client-v2", "Deploy the client version that routes by key: {routing}. "
                    "Until you confirm, rs1's writes of {target}'s half keep being copied to {target}.")

    def __init__(self) -> None:
        self._background: BackgroundCatchUp | None = None

    def describe(self, ctx: StepContext) -> list[str]:
        quiet = ctx.config.gates.quiet_period
        return ["gate deploy-client-v2: the app routes each key to its set; the catch-up runs meanwhile",
                f"drain: rs2 holds everything up to rs1's latest write and no write of {ctx.target_name}'s half "
                f"reached {ctx.source_name} for {quiet}",
                f"verify {ctx.target_name}'s half on both sets (counts + content hash per _id range); "
                "a difference re-opens the gate",
                "stop the catch-up and record the cutover (cleanup is allowed from then on)"]

    def gate_tick(self, ctx: StepContext) -> None:
        """Called between gate polls: keep the catch-up running and surface its failure."""
        if self._background is None:
            self._background = BackgroundCatchUp(make_worker(ctx)).start()
        self._background.check()

    def _stop_background(self) -> None:
        if self._background is not None:
            background, self._background = self._background, None
            background.stop()

    def apply(self, ctx: StepContext) -> None:
        self._stop_background()
        quiet = parse_duration(ctx.config.gates.quiet_period)
        stats = make_worker(ctx).drain(quiet_seconds=quiet, timeout=DRAIN_TIMEOUT)
        ctx.progress(f"catch-up drained: {stats.applied} applied, {stats.deleted} deleted in total")
        report = compare_sets(ctx.rs1(), ctx.rs2(), ctx.config.routing, [ctx.target_name],
                              source_name=ctx.source_name, target_name=ctx.target_name, progress=ctx.progress)
        if not report.ok:
            ctx.state.gates.pop(self.gate.id, None)  # type: ignore[union-attr]
            ctx.save()
            raise self.fail(f"verification failed, the gate stays open: {report.summary()}",
                            hint=f"investigate with `splitter verify -c {ctx.config.config_path}`; "
                                 f"`splitter run` waits at the gate again with the catch-up running")
        ctx.state.cutover = CutoverRecord(state="final", epoch=1, owner=ctx.target_name, verified=True)
        ctx.save()

    def verify(self, ctx: StepContext) -> None:
        self.check(ctx.state.cutover is not None, "the cutover was not recorded")
