"""Steps 9 and 10: start both data nodes as rs2 and wait for PRIMARY; only then start arbiter 2."""

from __future__ import annotations

from splitter.config import parse_duration
from splitter.hosts.node_config import plan_lines, start_vars
from splitter.run_context import StepContext
from splitter.steps.anchor import target_synced
from splitter.steps.base import Step


def target_states(ctx: StepContext) -> dict[str, str]:
    """rs2 member states as any reachable rs2 data node sees them ({} when none answers yet)."""
    for host in ctx.move_hosts:
        if ctx.inspector.reachable(host):
            try:
                return ctx.inspector.status(host).states()
            except Exception:  # a node still starting up refuses replSetGetStatus
                continue
    return {}


def describe_states(ctx: StepContext) -> str:
    return ", ".join(f"{h}={s}" for h, s in target_states(ctx).items()) or "no member answers yet"


class StartTarget(Step):
    id = "start-rs2"
    title = "Start the moving nodes as rs2 and wait for a PRIMARY (arbiter 2 still down)"
    reversible = False

    def describe(self, ctx: StepContext) -> list[str]:
        return [f"playbook mongod_start.yml on {', '.join(ctx.move_names)} (mongod_mode=replset, "
                f"replset_name={ctx.target_name})",
                f"wait until one of {', '.join(ctx.move_hosts)} is PRIMARY: with the arbiter down only the node "
                "with the longer oplog can win (the other syncs first)",
                *plan_lines(ctx.applier.adapter, ctx.inventory, ctx.move_names, "replset", ctx.target_name)]

    def precheck(self, ctx: StepContext) -> None:
        arb = ctx.config.arbiters.target
        self.check(not ctx.inspector.reachable(arb.host),
                   f"{arb.name} already runs; it must start only after rs2 has a PRIMARY")

    def apply(self, ctx: StepContext) -> None:
        ctx.applier.playbook("mongod_start.yml", ctx.move_names,
                             start_vars(ctx.applier.adapter, ctx.inventory, ctx.move_names, "replset", ctx.target_name))
        ctx.wait_for(f"{ctx.target_name} PRIMARY and SECONDARY", lambda: self._ready(ctx), timeout=300,
                     describe=lambda: describe_states(ctx))

    def _ready(self, ctx: StepContext) -> bool:
        states = target_states(ctx)
        return sorted(states.get(h, "") for h in ctx.move_hosts) == ["PRIMARY", "SECONDARY"]

    def verify(self, ctx: StepContext) -> None:
        self.check(self._ready(ctx), f"{ctx.target_name} is not PRIMARY+SECONDARY: {describe_states(ctx)}")


class StartTargetArbiter(Step):
    id = "start-arbiter-rs2"
    title = "Start arbiter 2 (empty; it takes rs2's config from heartbeats)"
    reversible = False

    def describe(self, ctx: StepContext) -> list[str]:
        arb = ctx.config.arbiters.target
        return [f"wait until every {ctx.target_name} data node's optime and {ctx.target_name}'s majority commit point "
                f"reach the split optime (at most {ctx.config.planning.target_sync_timeout}): an arbiter votes for "
                "any candidate, so a failover before that could roll back entries the catch-up never replays",
                f"playbook mongod_start.yml on {arb.name} (mongod_mode=replset, replset_name={ctx.target_name})",
                f"wait for {ctx.target_name} = PRIMARY + SECONDARY + ARBITER"]

    def precheck(self, ctx: StepContext) -> None:
        if ctx.inspector.reachable(ctx.config.arbiters.target.host):
            return  # started by an earlier attempt: the wait below passed then
        assert ctx.state.split is not None, "rewrite-replset-config records the split optime"
        split = ctx.state.split.optime.ts
        ctx.wait_for(f"{ctx.target_name}'s data nodes and majority commit point at the split optime",
                     lambda: target_synced(ctx, split)[0], timeout=parse_duration(
                         ctx.config.planning.target_sync_timeout), describe=lambda: target_synced(ctx, split)[1])

    def apply(self, ctx: StepContext) -> None:
        arb = ctx.config.arbiters.target
        ctx.applier.playbook("mongod_start.yml", [arb.name], {"mongod_mode": "replset",
                                                             "replset_name": ctx.target_name})
        ctx.wait_for(f"{ctx.target_name} PRIMARY + SECONDARY + ARBITER", lambda: self._ready(ctx), timeout=180,
                     describe=lambda: describe_states(ctx))

    def _ready(self, ctx: StepContext) -> bool:
        return sorted(target_states(ctx).values()) == ["ARBITER", "PRIMARY", "SECONDARY"]

    def verify(self, ctx: StepContext) -> None:
        self.check(self._ready(ctx), f"{ctx.target_name} is not PRIMARY+SECONDARY+ARBITER: {describe_states(ctx)}")
