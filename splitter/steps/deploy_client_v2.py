"""Step 12: gate (the app follows the routing document) while the catch-up runs; then the cutover protocol:
fence, drain, publish the switch, the way back, verification at a snapshot, and wait for `finalize`.

Touches: see splitter/cutover/ (switch.py lists everything the cutover changes).
"""

from __future__ import annotations

from splitter.catchup import BackgroundCatchUp
from splitter.cutover.protocol import CutoverProtocol
from splitter.cutover.switch import DryRunSwitch, RealSwitch, is_lab
from splitter.run_context import StepContext
from splitter.steps.base import GateSpec, Step
from splitter.steps.catch_up import make_worker


def auto_finalize(ctx: StepContext) -> bool:
    """`run --yes` finalizes by itself only on the lab inventory; elsewhere only with --yes-cutover."""
    return ctx.yes_cutover or (ctx.auto_confirm and is_lab(ctx))


class DeployClientV2(Step):
    id = "deploy-client-v2"
    title = "Gate: app follows the routing document; fence, drain, switch, verify, finalize"
    reversible = False
    gate = GateSpec("deploy-client-v2", "Deploy the client version that routes each key by the routing document "
                    "(splitter.routing on both sets: {routing}). Until you confirm, rs1's writes of {target}'s "
                    "half keep being copied to {target}; then splitter fences, drains and switches them.")

    def __init__(self) -> None:
        self._background: BackgroundCatchUp | None = None

    def describe(self, ctx: StepContext) -> list[str]:
        actions = DryRunSwitch(ctx)
        protocol = CutoverProtocol(ctx, actions)
        lines = ["gate deploy-client-v2: the app follows splitter.routing; the catch-up runs meanwhile"]
        cutover = ctx.state.cutover
        if cutover is not None and cutover.state == "final":
            return [*lines, "the cutover is final"]
        protocol.start()
        protocol.resume()
        finish = ("finalize by itself after the verification" if auto_finalize(ctx) else
                  f"wait for `splitter finalize -c {ctx.config.config_path}` (or `reverse`) with the way back "
                  "running")
        return [*lines, *actions.lines, finish]

    def gate_tick(self, ctx: StepContext) -> None:
        """Between gate polls: publish the split's routing once, keep the catch-up running, surface its failure."""
        if self._background is None:
            CutoverProtocol(ctx, RealSwitch(ctx)).start()
            self._background = BackgroundCatchUp(make_worker(ctx)).start()
        self._background.check()

    def _stop_background(self) -> None:
        if self._background is not None:
            background, self._background = self._background, None
            background.stop()

    def apply(self, ctx: StepContext) -> None:
        self._stop_background()
        actions = RealSwitch(ctx)
        try:
            CutoverProtocol(ctx, actions, auto_finalize=auto_finalize(ctx)).run()
        finally:
            actions.stop_stream()

    def verify(self, ctx: StepContext) -> None:
        self.check(ctx.state.cutover is not None and ctx.state.cutover.state == "final",
                   "the cutover is not final")
