"""Grow step 4: wait until every new member finished its initial sync (SECONDARY) and caught up."""

from __future__ import annotations

from splitter.cluster.lag import LagReader
from splitter.config import parse_duration
from splitter.grow.context import GrowContext
from splitter.steps.base import Step


def sync_problems(ctx: GrowContext) -> list[str]:
    """What keeps the new members from counting as synced (empty when all are SECONDARY within the lag limit)."""
    reading = LagReader(ctx.rs1()).read()
    if reading.error:
        return [reading.error]
    limit = parse_duration(ctx.grow.planning.max_member_lag)
    problems = []
    for host in ctx.grow.new_hosts:
        if host not in reading.lags:
            state = reading.unhealthy.get(host) or ctx.inspector.status(ctx.source_primary()).state_of(host)
            problems.append(f"{host} is {state or 'not in the set'}")
        elif reading.lags[host] > limit:
            problems.append(f"{host} lags {reading.lags[host]:.0f}s (limit {limit:.0f}s)")
    return problems


class WaitSynced(Step):
    id = "grow-wait-synced"
    title = "Wait for the initial sync: new members SECONDARY and caught up"

    def describe(self, ctx: GrowContext) -> list[str]:  # type: ignore[override]
        return [f"wait (up to {ctx.grow.planning.expected_initial_sync}) until {', '.join(ctx.grow.new_hosts)} are "
                f"SECONDARY and lag at most {ctx.grow.planning.max_member_lag}"]

    def apply(self, ctx: GrowContext) -> None:  # type: ignore[override]
        ctx.wait_for("the initial sync of the new members", lambda: not sync_problems(ctx),
                     timeout=parse_duration(ctx.grow.planning.expected_initial_sync), interval=1,
                     describe=lambda: "; ".join(sync_problems(ctx)))

    def verify(self, ctx: GrowContext) -> None:  # type: ignore[override]
        problems = sync_problems(ctx)
        self.check(not problems, "; ".join(problems))
