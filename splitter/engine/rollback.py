"""`splitter rollback`: before rewrite-replset-config, put rs1 back to four data nodes as they were."""

from __future__ import annotations

import time
from typing import Any

from splitter.cluster.shutdown import QUIESCE_SECS
from splitter.errors import OperationalError
from splitter.hosts.node_config import start_vars
from splitter.run_context import StepContext
from splitter.steps import reconfig as rc
from splitter.steps.add_arbiter_rs1 import source_arbiter_kept
from splitter.store.checkpoint import RunState
from splitter.store.gatefiles import clear_confirmations
from splitter.store.records import MemberRecord, OriginalConfig


def restored_fields(member: MemberRecord) -> dict[str, Any]:
    """The config fields rollback puts back on a moving member (everything the demotion or removal lost)."""
    return {"priority": member.priority, "votes": member.votes, "hidden": member.hidden,
            "secondaryDelaySecs": member.secondary_delay_secs, "tags": dict(member.tags)}


def member_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The same fields as a live config member has them (server defaults filled in)."""
    return restored_fields(MemberRecord.from_doc(doc))


def rollback_refusal(state: RunState) -> str | None:
    """Why rollback is not allowed any more, or None when it is."""
    ponr = state.point_of_no_return
    if ponr is None:
        return None
    return (f"the point of no return was passed at {ponr.at} ({ponr.step}: {ponr.detail}); "
            "run `splitter run` to finish the split")


class Rollback:
    """Undo steps 1-6 in reverse, each action idempotent, one voting change per reconfig."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx

    def run(self) -> None:
        ctx = self.ctx
        reason = rollback_refusal(ctx.state)
        if reason:
            raise OperationalError(f"rollback refused: {reason}")
        original = ctx.state.original_config
        if original is None:
            ctx.progress("nothing to roll back: the run has not changed the cluster")
            return
        self._stop_standalone()
        self._restart_as_members()
        self._restore_members(original)
        self._remove_arbiter()
        ctx.wait_for("rs1 healthy with its original members", lambda: not self.verify(), timeout=120,
                     describe=lambda: "; ".join(self.verify()))
        self._archive_state()

    def _stop_standalone(self) -> None:
        ctx = self.ctx
        for name in ctx.move_names:
            host = ctx.maintenance_host(name)
            if ctx.inspector.reachable(host):
                ctx.applier.shutdown(host, timeout_secs=QUIESCE_SECS)
                ctx.applier.playbook("mongod_stop.yml", [name])

    def _restart_as_members(self) -> None:
        ctx = self.ctx
        down = [n for n, h in zip(ctx.move_names, ctx.move_hosts, strict=True) if not ctx.inspector.reachable(h)]
        if down:
            # Each node's own mongod.conf back as it was before the split (byte for byte).
            ctx.applier.playbook("mongod_start.yml", down, start_vars(ctx.applier.adapter, ctx.inventory, down,
                                                                      "original", ctx.source_name))

    def _restore_members(self, original: OriginalConfig) -> None:
        ctx = self.ctx
        by_host = {m.host: m for m in original.members}
        for host in ctx.move_hosts:
            config = rc.live_config(ctx)
            if rc.member_doc(config, host) is None:
                taken = {int(m["_id"]) for m in config["members"]}
                new = rc.with_added(config, host, priority=0, votes=0)
                if by_host[host].id not in taken:
                    new["members"][-1]["_id"] = by_host[host].id
                rc.reconfig(ctx, new, f"re-add {host} (non-voting first)")
        ctx.wait_for("the moving nodes to be SECONDARY", lambda: all(
            ctx.inspector.status(ctx.source_primary()).state_of(h) == "SECONDARY" for h in ctx.move_hosts),
            timeout=300)
        for host in ctx.move_hosts:
            config = rc.live_config(ctx)
            want = restored_fields(by_host[host])
            if member_fields(rc.member_doc(config, host)) != want:  # type: ignore[arg-type]
                rc.reconfig(ctx, rc.with_member(config, host, **want),
                            f"restore {host} " + ", ".join(f"{k} {v}" for k, v in want.items()))

    def _remove_arbiter(self) -> None:
        ctx = self.ctx
        arb = ctx.config.arbiters.source
        if source_arbiter_kept(ctx):  # the set had it before the split: it stays
            return
        config = rc.live_config(ctx)
        if rc.member_doc(config, arb.host) is not None:
            rc.reconfig(ctx, rc.without_member(config, arb.host), f"remove arbiter {arb.host}")
        ctx.applier.playbook("mongod_stop.yml", [arb.name])

    def _archive_state(self) -> None:
        ctx = self.ctx
        if ctx.store.path.exists():
            ctx.store.path.rename(ctx.files.rolled_back_checkpoint(int(time.time())))
        clear_confirmations(ctx.files)
        ctx.state = RunState()

    def verify(self) -> list[str]:
        """Problems left after rollback (empty when rs1 is four healthy data nodes as originally configured)."""
        ctx = self.ctx
        recorded = ctx.state.original_config
        original = {m.host: m for m in recorded.members} if recorded else {}
        primary = ctx.source_primary()
        config = ctx.inspector.config(primary)
        problems = []
        if sorted(config.hosts) != sorted(original or ctx.keep_hosts + ctx.move_hosts):
            problems.append(f"members are {', '.join(config.hosts)}")
        for m in config.raw["members"]:
            want = original.get(m["host"])
            if want and member_fields(m) != restored_fields(want):
                problems.append(f"{m['host']} has {member_fields(m)}, not {restored_fields(want)}")
        states = ctx.inspector.status(primary).states()
        problems += [f"{h} is {s}" for h, s in states.items() if s not in ("PRIMARY", "SECONDARY")
                     and not (s == "ARBITER" and h in original)]
        return problems
