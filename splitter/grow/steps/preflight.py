"""Grow step 0: read-only checks that the set, the new hosts and grow.yaml agree before anything changes."""

from __future__ import annotations

from splitter.config import parse_duration
from splitter.errors import BadInput, OperationalError
from splitter.grow.context import GrowContext
from splitter.steps.base import Step
from splitter.steps.preflight import MIN_VERSION, Preflight, PreflightRefused, live_config
from splitter.store.records import MemberRecord, OriginalConfig


class GrowPreflight(Step):
    id = "grow-preflight"
    title = "Preflight: set topology and health, new hosts free and empty, oplog window, disk"

    def describe(self, ctx: GrowContext) -> list[str]:  # type: ignore[override]
        grow = ctx.grow
        return [f"check {ctx.source_name}'s live members equal grow.yaml ({', '.join(grow.hosts)}), all healthy",
                f"check the new members {', '.join(grow.new_hosts)} are in the inventory, nothing listens on their "
                "ports, their dbpaths are empty or absent",
                f"check every data member's oplog spans >= {grow.planning.expected_initial_sync} (the expected "
                "initial sync) unless it is not full yet",
                f"check each new host's filesystem has >= {grow.planning.min_free_disk_vs_data:g} x the set's data "
                "free (check_new_member.yml)",
                f"record {ctx.source_name}'s members, priorities and votes (for `splitter grow rollback`)"]

    def precheck(self, ctx: GrowContext) -> None:  # type: ignore[override]
        self._inventory(ctx)
        self._topology(ctx)
        data_hosts = self._health(ctx)
        self._versions_and_oplog(ctx, data_hosts)
        self._new_hosts(ctx)

    def _inventory(self, ctx: GrowContext) -> None:
        for member in ctx.grow.new_members:
            inv = ctx.inventory.get(member.name)
            if inv is None:
                raise BadInput(f"inventory {ctx.grow.inventory_path} has no host {member.name}",
                               hint=f"add {member.name} to the inventory or fix the name in grow.yaml")
            port = int(member.host.rsplit(":", 1)[1])
            if inv.port != port:
                raise BadInput(f"{member.name}: grow.yaml says port {port}, inventory says mongod_port {inv.port}")
            if str(inv.vars["mongod_dbpath"]) != member.dbpath:
                raise BadInput(f"{member.name}: dbpath {member.dbpath} in grow.yaml differs from the inventory's "
                               f"mongod_dbpath {inv.vars['mongod_dbpath']}")

    def _topology(self, ctx: GrowContext) -> None:
        hosts = ctx.grow.hosts
        config = live_config(ctx, hosts, "grow.yaml", "set.name", hosts_hint="set.members in grow.yaml",
                             fix_hint="fix set.name or set.members in grow.yaml")
        if sorted(config.hosts) != sorted(hosts):
            raise BadInput(f"{ctx.source_name}'s live members {', '.join(config.hosts)} differ from grow.yaml's "
                           f"set.members {', '.join(hosts)}", hint="list every member of the set now, arbiters "
                           "included; the new members go under new_members")

    def _health(self, ctx: GrowContext) -> list[str]:
        """Every member healthy and caught up; returns the data members (arbiters hold no oplog)."""
        status = ctx.inspector.status(ctx.source_primary())
        bad = [f"{m.host}={m.state}" for m in status.members if m.state not in ("PRIMARY", "SECONDARY", "ARBITER")]
        if bad:
            raise PreflightRefused(f"members not healthy: {', '.join(bad)}", hint="wait until all are healthy")
        return [m.host for m in status.members if m.state != "ARBITER"]

    def _versions_and_oplog(self, ctx: GrowContext, data_hosts: list[str]) -> None:
        for host in data_hosts:
            version = ctx.inspector.server_facts(host)["version"]
            if tuple(int(p) for p in version.split(".")[:2]) < MIN_VERSION:
                raise PreflightRefused(f"{host}: mongod {version} is older than 4.4 (safe reconfig)")
        needed = parse_duration(ctx.grow.planning.expected_initial_sync)
        for host in data_hosts:
            # Any data member can be the sync source; the sync fails if the oplog rolls past its start point.
            window = ctx.inspector.oplog_window_seconds(host)
            ctx.state.oplog_window[host] = window
            if window < needed and Preflight._oplog_full(ctx, host):
                raise PreflightRefused(f"{host}: oplog window {window:.0f}s is shorter than the expected initial "
                                       f"sync ({needed:.0f}s): the new members could never catch up",
                                       hint="grow the oplog (replSetResizeOplog) or correct "
                                            "planning.expected_initial_sync")

    def _new_hosts(self, ctx: GrowContext) -> None:
        grow = ctx.grow
        for member in grow.new_members:
            if ctx.inspector.listening(member.host):
                raise BadInput(f"something already answers on new member {member.name}'s address {member.host}",
                               hint="a new member must not run yet: stop what runs there or choose a free port")
        data = ctx.inspector.server_facts(ctx.source_primary()).get("data_bytes") or 0
        needed = int(grow.planning.min_free_disk_vs_data * data)
        try:
            ctx.applier.adapter.run("check_new_member.yml", grow.new_names, {"min_free_bytes": needed})
        except OperationalError as exc:
            raise BadInput(f"new hosts not ready: {exc.message}",
                           hint="use empty dbpaths on filesystems with room for the set's data") from exc

    def apply(self, ctx: GrowContext) -> None:  # type: ignore[override]
        if ctx.state.original_config is None:  # rollback puts the set back to these members
            config = ctx.inspector.config(ctx.source_primary())
            ctx.state.original_config = OriginalConfig(
                version=config.version, members=tuple(MemberRecord.from_doc(m) for m in config.raw["members"]))

    def verify(self, ctx: GrowContext) -> None:  # type: ignore[override]
        self.check(ctx.state.original_config is not None, f"{ctx.source_name}'s original config was not recorded")
