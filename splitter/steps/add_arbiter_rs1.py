"""Step 2: explicit default write concern, then start arbiter 1 and add it to rs1 (before any node stops)."""

from __future__ import annotations

from splitter.run_context import StepContext
from splitter.steps import reconfig as rc
from splitter.steps.base import Step


def source_arbiter_kept(ctx: StepContext) -> bool:
    """The source set already has `arbiters.source` as its arbiter (a set left by an earlier split): it stays
    with the set that keeps its name and is neither prepared, started, added nor removed by rollback."""
    host = ctx.config.arbiters.source.host
    original = ctx.state.original_config
    if original is not None:
        return any(m.host == host and m.arbiter for m in original.members)
    member = ctx.inspector.config(ctx.source_primary()).by_host(host)
    return member is not None and member.arbiter


def default_wc_is_explicit(ctx: StepContext) -> bool:
    doc = ctx.inspector.default_rw_concern(ctx.source_primary())
    return doc.get("defaultWriteConcernSource") == "global" and bool(doc.get("defaultWriteConcern"))


class AddArbiterRs1(Step):
    id = "add-arbiter-rs1"
    title = "Set an explicit default write concern, start arbiter 1, add it to rs1"

    def describe(self, ctx: StepContext) -> list[str]:
        arb = ctx.config.arbiters.source
        wc = ctx.config.planning.default_write_concern
        return [f"setDefaultRWConcern {{defaultWriteConcern: {wc}}} unless already set explicitly — later reconfigs "
                "(2 data nodes + 1 arbiter) would otherwise change the implicit default and be refused",
                f"playbook mongod_start.yml on {arb.name} (mongod_mode=replset, replset_name={ctx.source_name})",
                rc.describe_change(ctx.source_name, f"add {{host: {arb.host}, arbiterOnly: true}}")]

    def apply(self, ctx: StepContext) -> None:
        primary = ctx.source_primary()
        if not default_wc_is_explicit(ctx):
            ctx.applier.set_default_write_concern(ctx.rs1(), primary, ctx.config.planning.default_write_concern)
        arb = ctx.config.arbiters.source
        if source_arbiter_kept(ctx):
            ctx.progress(f"{arb.host} is already {ctx.source_name}'s arbiter: it stays")
        else:
            ctx.applier.playbook("mongod_start.yml", [arb.name], {"mongod_mode": "replset",
                                                                 "replset_name": ctx.source_name})
        config = rc.live_config(ctx)
        if rc.member_doc(config, arb.host) is None:
            rc.reconfig(ctx, rc.with_added(config, arb.host, arbiterOnly=True), f"add arbiter {arb.host}")
        ctx.wait_for(f"{arb.host} to be ARBITER in {ctx.source_name}",
                     lambda: ctx.inspector.status(ctx.source_primary()).state_of(arb.host) == "ARBITER", timeout=120)

    def verify(self, ctx: StepContext) -> None:
        arb = ctx.config.arbiters.source
        self.check(default_wc_is_explicit(ctx), "the default write concern is not set explicitly")
        member = ctx.inspector.config(ctx.source_primary()).by_host(arb.host)
        self.check(member is not None and member.arbiter, f"{arb.host} is not an arbiter of {ctx.source_name}")
        state = ctx.inspector.status(ctx.source_primary()).state_of(arb.host)
        self.check(state == "ARBITER", f"{arb.host} is {state}, not ARBITER")
