"""Grow step 5: give each new member its votes and priority, one reconfig at a time (safe reconfig allows one
voting change per replSetReconfig), each applied only once it is caught up.

Touches: the set's replica-set config (replSetReconfig).
"""

from __future__ import annotations

from splitter.grow.context import GrowContext
from splitter.grow.steps.synced import sync_problems
from splitter.steps import reconfig as rc
from splitter.steps.base import Step


class GrantVotes(Step):
    id = "grow-grant-votes"
    title = "Give the new members their votes and priority, one reconfig each"

    def describe(self, ctx: GrowContext) -> list[str]:  # type: ignore[override]
        return [rc.describe_change(ctx.source_name, f"{m.host}: priority {m.priority:g}, votes {m.votes}")
                for m in ctx.grow.new_members]

    def precheck(self, ctx: GrowContext) -> None:  # type: ignore[override]
        problems = sync_problems(ctx)
        if problems:
            raise self.fail("the new members are not caught up: " + "; ".join(problems),
                            hint="wait, then run `splitter grow run` again")

    def apply(self, ctx: GrowContext) -> None:  # type: ignore[override]
        for member in ctx.grow.new_members:
            config = rc.live_config(ctx)
            doc = rc.member_doc(config, member.host)
            if doc is None:
                raise self.fail(f"{member.host} is no longer a member of {ctx.source_name}")
            if doc.get("votes", 1) != member.votes or doc.get("priority", 1) != member.priority:
                rc.reconfig(ctx, rc.with_member(config, member.host, votes=member.votes, priority=member.priority),
                            f"votes {member.votes}, priority {member.priority:g} for {member.host}")

    def verify(self, ctx: GrowContext) -> None:  # type: ignore[override]
        config = ctx.inspector.config(ctx.source_primary())
        for member in ctx.grow.new_members:
            live = config.by_host(member.host)
            self.check(live is not None and live.votes == member.votes and live.priority == member.priority,
                       f"{member.host} has {live and (live.priority, live.votes)}, want priority "
                       f"{member.priority:g}, votes {member.votes}")
        states = ctx.inspector.status(ctx.source_primary()).states()
        bad = [f"{h} is {s}" for h, s in states.items() if s not in ("PRIMARY", "SECONDARY", "ARBITER")]
        self.check(not bad, "; ".join(bad))
