"""Step 6: start nodes 3+4 without --replSet, on a maintenance port bound to localhost."""

from __future__ import annotations

from splitter.hosts.node_config import plan_lines, start_vars
from splitter.run_context import StepContext
from splitter.steps.base import Step


class StartStandalone(Step):
    id = "start-standalone"
    title = "Start the moving nodes standalone on their maintenance ports"

    def describe(self, ctx: StepContext) -> list[str]:
        hosts = ", ".join(f"{n} -> {ctx.maintenance_host(n)}" for n in ctx.move_names)
        return [f"playbook mongod_start.yml on {', '.join(ctx.move_names)} (mongod_mode=standalone: no replSetName, "
                "maintenance port bound to localhost, disableLogicalSessionCacheRefresh=true, ttlMonitorEnabled=false: "
                f"no TTL deletes rs1 never made): {hosts}",
                *plan_lines(ctx.applier.adapter, ctx.inventory, ctx.move_names, "standalone")]

    def precheck(self, ctx: StepContext) -> None:
        config = ctx.inspector.config(ctx.source_primary())
        for host in ctx.move_hosts:
            self.check(config.by_host(host) is None, f"{host} is still a member of {ctx.source_name}")

    def apply(self, ctx: StepContext) -> None:
        # Each node's own mongod.conf with only the standalone phase's keys changed (hosts/node_config.py).
        ctx.applier.playbook("mongod_start.yml", ctx.move_names,
                             start_vars(ctx.applier.adapter, ctx.inventory, ctx.move_names, "standalone"))

    def verify(self, ctx: StepContext) -> None:
        for name in ctx.move_names:
            host = ctx.maintenance_host(name)
            state = ctx.inspector.my_state(host)
            self.check(state == "STANDALONE", f"{name} on {host} is {state}, not STANDALONE")
            ttl = ctx.member(host).admin.command("getParameter", 1, ttlMonitorEnabled=1)["ttlMonitorEnabled"]
            self.check(ttl is False, f"{name} on {host} runs its TTL monitor (stop it and start it again through "
                       "the playbook, whose config sets ttlMonitorEnabled: false)")
