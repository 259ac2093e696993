"""Step 7 (point of no return): prefix-check both oplogs, write one identical rs2 config doc to both nodes."""

from __future__ import annotations

from typing import Any

from splitter.cluster.replset_rules import build_target_config, config_problems, mover_problems
from splitter.run_context import StepContext
from splitter.steps.anchor import source_entry, wait_source_committed
from splitter.steps.base import Step
from splitter.store.atomic import now_iso
from splitter.store.records import OpTime, PointOfNoReturn, SplitPoint, TargetConfig

COMPARED_FIELDS = ("ts", "t", "op", "ns", "o", "o2", "wall")


class RewriteReplsetConfig(Step):
    id = "rewrite-replset-config"
    title = "Write rs2's config into local.system.replset on both moving nodes"
    reversible = False

    def describe(self, ctx: StepContext) -> list[str]:
        arb = ctx.config.arbiters.target
        return [f"read the last oplog entry on {' and '.join(ctx.move_names)}; refuse unless one is a prefix of "
                "the other; the larger is the split optime",
                f"wait until {ctx.source_name}'s majority commit point reaches the split optime (at most "
                f"{ctx.config.planning.anchor_timeout}); refuse unless {ctx.source_name}'s oplog holds the identical "
                "entry there",
                f"write {{_id: {ctx.target_name}, members: {[*ctx.move_hosts, arb.host]} (arbiter last), term kept, "
                "one new replicaSetId}} to local.system.replset on both, delete the rs1 doc",
                "POINT OF NO RETURN: from here the split only goes forward (no rollback)"]

    def _clients(self, ctx: StepContext) -> dict[str, Any]:
        return {name: ctx.member(ctx.maintenance_host(name)) for name in ctx.move_names}

    def _oplog_check(self, ctx: StepContext, clients: dict[str, Any]) -> None:
        ends = {name: ctx.inspector.last_oplog_entry(c) for name, c in clients.items()}
        missing = [n for n, e in ends.items() if e is None]
        self.check(not missing, f"no oplog on {', '.join(missing)}")
        (short_name, short), (long_name, long) = sorted(ends.items(), key=lambda kv: kv[1].ts)  # type: ignore
        mine = ctx.inspector.oplog_entry_at(clients[short_name], short.ts)
        theirs = ctx.inspector.oplog_entry_at(clients[long_name], short.ts)
        same = theirs is not None and all(mine.get(f) == theirs.get(f) for f in COMPARED_FIELDS)  # type: ignore
        if not same:
            raise self.fail(f"{short_name}'s last oplog entry {short.describe()} is not in {long_name}'s oplog: "
                            "the two histories diverge", hint="nothing was written; roll back with "
                            "`splitter rollback` and investigate")
        self._anchor(ctx, long_name, clients[long_name], long.ts)  # type: ignore[union-attr]
        ctx.state.split = SplitPoint(optime=OpTime.of(long.ts, long.term),  # type: ignore[union-attr]
                                     oplog_ends={n: OpTime.of(e.ts, e.term) for n, e in ends.items()})  # type: ignore
        ctx.progress(f"oplog ends: {short_name} {short.describe()}, {long_name} {long.describe()} "
                     f"(prefix ok); split optime {long.describe()}")  # type: ignore[union-attr]

    def _anchor(self, ctx: StepContext, name: str, client: Any, ts: Any) -> None:
        """The split optime must be an entry of rs1's committed history, not one rs1 rolled back since: nodes
        3+4 had no vote, so entries they hold may never have reached rs1's majority."""
        wait_source_committed(ctx, ts)
        mine, theirs = ctx.inspector.oplog_entry_at(client, ts), source_entry(ctx, ts)
        if theirs is None or any(mine.get(f) != theirs.get(f) for f in COMPARED_FIELDS):  # type: ignore[union-attr]
            raise self.fail(f"{name}'s last oplog entry {ts.time}:{ts.inc} is not in {ctx.source_name}'s committed "
                            f"history ({'absent' if theirs is None else 'different'} there): {ctx.source_name} rolled "
                            "it back after the moving nodes stopped", hint="nothing was written; `splitter rollback` "
                            "(the moving nodes roll the entry back when they rejoin), then start again")

    def _target_config(self, ctx: StepContext, clients: dict[str, Any]) -> dict[str, Any]:
        if ctx.state.target_config is None:
            stored = [d for d in ctx.inspector.stored_config(clients[ctx.move_names[0]]) if d["_id"] != ctx.target_name]
            self.check(len(stored) == 1, f"expected one rs1 config doc on {ctx.move_names[0]}, found {len(stored)}")
            assert ctx.state.original_config is not None, "preflight records the original config"
            original = {m.host: m.priority for m in ctx.state.original_config.members}
            doc = build_target_config(stored[0], ctx.target_name, ctx.move_hosts,
                                      ctx.config.arbiters.target.host, original)
            movers = [m for m in doc["members"] if not m.get("arbiterOnly")]
            problems = [p for m in movers for p in mover_problems(m, ctx.target_name)] + config_problems(doc)
            if problems:  # before the point of no return: nothing is written, rollback still works
                raise self.fail(f"{ctx.target_name}'s config would be invalid: " + "; ".join(problems),
                                hint="nothing was written; `splitter rollback`, fix the members in "
                                f"{ctx.source_name}'s config, then start again")
            # Saved before any write so both nodes get the very same document, also after a crash.
            ctx.state.target_config = TargetConfig.of(doc)
            ctx.save()
        return ctx.state.target_config.doc()

    def apply(self, ctx: StepContext) -> None:
        clients = self._clients(ctx)
        self._oplog_check(ctx, clients)
        ctx.save()
        doc = self._target_config(ctx, clients)
        if ctx.state.point_of_no_return is None:
            ctx.state.point_of_no_return = PointOfNoReturn(
                step=self.id, at=now_iso(), detail=f"writing {ctx.target_name}'s config to "
                f"{', '.join(ctx.move_names)}: from here the split only goes forward")
            ctx.save()
        for name, client in clients.items():
            ctx.applier.write_replset_config(client, ctx.maintenance_host(name), doc)

    def verify(self, ctx: StepContext) -> None:
        self.check(ctx.state.target_config is not None and ctx.state.split is not None,
                   "rs2's config or the split optime was not recorded")
        expected = ctx.state.target_config.doc()  # type: ignore[union-attr]
        for name, client in self._clients(ctx).items():
            docs = ctx.inspector.stored_config(client)
            self.check(docs == [expected], f"{name}'s local.system.replset is not exactly rs2's config")
