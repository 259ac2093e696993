"""`splitter grow rollback`: remove the new members (one reconfig each), stop them, and check the set is as it was.

Touches: the set's replica-set config (replSetReconfig), the new members' mongod processes (mongod_stop.yml).
"""

from __future__ import annotations

import time

from splitter.grow.context import GrowContext
from splitter.steps import reconfig as rc
from splitter.store.checkpoint import RunState


class GrowRollback:
    """Every action idempotent: a rollback killed half way is run again."""

    def __init__(self, ctx: GrowContext) -> None:
        self.ctx = ctx

    def run(self) -> None:
        ctx = self.ctx
        if ctx.state.original_config is None:
            ctx.progress("nothing to roll back: the grow has not changed the cluster")
            return
        for host in ctx.grow.new_hosts:
            config = rc.live_config(ctx)
            if rc.member_doc(config, host) is not None:
                rc.reconfig(ctx, rc.without_member(config, host), f"remove new member {host}")
        ctx.applier.playbook("mongod_stop.yml", ctx.grow.new_names)
        ctx.wait_for(f"{ctx.source_name} healthy with its original members", lambda: not self.problems(),
                     timeout=120, describe=lambda: "; ".join(self.problems()))
        if ctx.store.path.exists():
            ctx.store.path.rename(ctx.files.rolled_back_checkpoint(int(time.time())))
        ctx.state = RunState()

    def problems(self) -> list[str]:
        """What differs from the recorded original set (empty when members, priorities and votes are back)."""
        ctx = self.ctx
        recorded = ctx.state.original_config
        original = {m.host: m for m in recorded.members} if recorded else {}
        config = ctx.inspector.config(ctx.source_primary())
        problems = []
        if sorted(config.hosts) != sorted(original):
            problems.append(f"members are {', '.join(config.hosts)}")
        for m in config.members:
            want = original.get(m.host)
            if want and (m.priority != want.priority or m.votes != want.votes):
                problems.append(f"{m.host} has priority {m.priority}, votes {m.votes}")
        states = ctx.inspector.status(ctx.source_primary()).states()
        problems += [f"{h} is {s}" for h, s in states.items() if s not in ("PRIMARY", "SECONDARY", "ARBITER")]
        problems += [f"{h} still answers" for h in ctx.grow.new_hosts if ctx.inspector.listening(h)]
        return problems
