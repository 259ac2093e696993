"""Step 0: read-only checks that the live cluster and hosts match split.yaml before anything changes."""

from __future__ import annotations

from splitter.cluster.lag import LagReader
from splitter.cluster.snapshots import ReplSetConfig
from splitter.config import parse_duration
from splitter.errors import BadInput, OperationalError, RetryableError
from splitter.hosts.node_config import disagreements, process_manager_problems, read_configs
from splitter.preflight import all_findings, report
from splitter.preflight.findings import PreflightRefused
from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID, RoutingDocument
from splitter.routing_held import moved_residue_refusal
from splitter.run_context import StepContext
from splitter.steps.add_arbiter_rs1 import source_arbiter_kept
from splitter.steps.base import Step
from splitter.store.records import MemberRecord, OriginalConfig

MIN_VERSION = (4, 4)  # safe reconfig and setDefaultRWConcern


def live_config(ctx: StepContext, hosts: list[str], file: str, name_key: str, *, hosts_hint: str,
                fix_hint: str) -> ReplSetConfig:
    """The source set's live config, read through `hosts`; bad input when none answers, when they belong to
    another set, or when the config cannot be read (split and grow preflights alike)."""
    reachable = [h for h in hosts if ctx.inspector.reachable(h)]
    if not reachable:
        raise BadInput(f"no member of {ctx.source_name} is reachable ({', '.join(hosts)})",
                       hint=f"check {hosts_hint}, the network and credentials")
    live_name = ctx.inspector.hello(reachable[0]).get("setName")
    if live_name != ctx.source_name:
        raise BadInput(f"{reachable[0]} belongs to the set named {live_name!r}, {file} says {name_key} "
                       f"{ctx.source_name!r}", hint=fix_hint)
    try:
        return ctx.inspector.config(ctx.source_primary())
    except RetryableError as exc:
        raise BadInput(f"cannot read {ctx.source_name}'s config: {exc.message}") from exc


class Preflight(Step):
    id = "preflight"
    title = "Preflight: topology, health, versions, oplog window, disk, hosts"

    def describe(self, ctx: StepContext) -> list[str]:
        members = ", ".join(ctx.keep_hosts + ctx.move_hosts)
        return [f"check {ctx.source_name}'s live config equals split.yaml ({members})",
                "check every member healthy, lag within limits, same version and FCV (>= 4.4)",
                f"check oplog window >= {ctx.config.planning.expected_duration} and free disk on every data node "
                f"(>= {ctx.config.planning.min_free_disk_fraction:.0%} of the filesystem, or else >= "
                f"{ctx.config.planning.min_free_disk_vs_data:g} x the node's data)",
                "check arbiter ports are free, routing keys exist, Ansible reaches every host (ping.yml)",
                "refuse: sharded-cluster members, index builds in progress, delayed/hidden moving members, configs "
                "either set could not hold after the split, time-series collections and views in routed databases "
                "(unless in routing.exclude), unique indexes without the routing key (unless in "
                "acknowledge.unique_indexes)",
                "warn: users/roles rs2 will copy, $out/$merge writers into routed collections",
                "record rs1's original member priorities/votes (for rollback)"]

    def precheck(self, ctx: StepContext) -> None:
        self._inventory(ctx)
        self._topology(ctx)
        self._health(ctx)
        self._versions_disk_oplog(ctx)
        self._arbiters_free(ctx)
        self._routing_keys(ctx)
        report(all_findings(ctx), ctx.progress)
        self._residues_held(ctx)
        self._hosts_reachable(ctx)
        self._node_configs(ctx)

    def _hosts_reachable(self, ctx: StepContext) -> None:
        """ping.yml is read-only, so it runs in plan too (not through the applier)."""
        names = [m.name for m in ctx.config.source.members] + [ctx.config.arbiters.source.name,
                                                               ctx.config.arbiters.target.name]
        arbiters = [ctx.config.arbiters.target.name]
        if not source_arbiter_kept(ctx):
            arbiters.append(ctx.config.arbiters.source.name)
        try:
            ctx.applier.adapter.run("ping.yml", names, {"empty_dbpath_hosts": arbiters})
        except OperationalError as exc:
            raise BadInput(f"hosts not ready: {exc.message}", hint="fix the inventory or the hosts") from exc

    def _node_configs(self, ctx: StepContext) -> None:
        """The moving nodes restart from their own mongod.conf (only the phase's keys changed), so the file must
        hold exactly what they run with now (getCmdLineOpts)."""
        files = read_configs(ctx.applier.adapter, ctx.move_names)
        for name, host in zip(ctx.move_names, ctx.move_hosts, strict=True):
            running = ctx.member(host).admin.command("getCmdLineOpts")["parsed"]
            problems = disagreements(files[name], running)
            path = ctx.inventory[name].vars["mongod_conf"]
            if problems:
                raise PreflightRefused(f"{name}: the running mongod and its config file {path} disagree: "
                                       + "; ".join(problems),
                                       hint=f"put every option {name} needs into {path} and restart it from the file "
                                       "(or fix mongod_conf in the inventory)")
            unmanageable = process_manager_problems(files[name], ctx.inventory[name])
            if unmanageable:
                raise PreflightRefused(f"{name}: mongod_manager is process, but its config file {path}: "
                                       + "; ".join(unmanageable),
                                       hint=f"set processManagement.fork: true and pidFilePath to mongod_pidfile in "
                                       f"{path}, or manage {name} with mongod_manager: systemd or docker")

    def _inventory(self, ctx: StepContext) -> None:
        for member in [*ctx.config.source.members, ctx.config.arbiters.source, ctx.config.arbiters.target]:
            inv = ctx.inventory.get(member.name)
            if inv is None:
                raise BadInput(f"inventory {ctx.config.inventory_path} has no host {member.name}",
                               hint=f"add {member.name} to the inventory or fix the name in split.yaml")
            port = int(member.host.rsplit(":", 1)[1])
            if inv.port != port:
                raise BadInput(f"{member.name}: split.yaml says port {port}, inventory says mongod_port {inv.port}")
        for arbiter in (ctx.config.arbiters.source, ctx.config.arbiters.target):
            inv_path = str(ctx.inventory[arbiter.name].vars["mongod_dbpath"])
            if inv_path != arbiter.dbpath:
                raise BadInput(f"{arbiter.name}: dbpath {arbiter.dbpath} in split.yaml differs from the "
                               f"inventory's mongod_dbpath {inv_path}")

    def _topology(self, ctx: StepContext) -> None:
        hosts = ctx.keep_hosts + ctx.move_hosts
        config = live_config(ctx, hosts, "split.yaml", "source.name", hosts_hint="the hosts in split.yaml",
                             fix_hint="fix source.name or the member hosts in split.yaml")
        live = sorted(m.host for m in config.members if not m.arbiter)
        # A set left by an earlier split has an arbiter: it may stay, if split.yaml names it as arbiters.source.
        strangers = [m.host for m in config.members if m.arbiter and m.host != ctx.config.arbiters.source.host]
        if live != sorted(hosts) or strangers:
            raise BadInput(f"{ctx.source_name}'s live members {', '.join(config.hosts)} differ from split.yaml's "
                           f"{', '.join(hosts)}", hint="the split starts from four data members and at most one "
                           "arbiter, which split.yaml names as arbiters.source (it stays with the set)")

    def _health(self, ctx: StepContext) -> None:
        status = ctx.inspector.status(ctx.source_primary())
        bad = [f"{m.host}={m.state}" for m in status.members if m.state not in ("PRIMARY", "SECONDARY", "ARBITER")]
        if bad:
            raise PreflightRefused(f"members not healthy: {', '.join(bad)}", hint="wait until all are healthy")
        max_lag = parse_duration(ctx.config.planning.max_member_lag)
        reading = LagReader(ctx.rs1()).read()
        if reading.error:
            raise PreflightRefused(f"cannot measure replication lag: {reading.error}")
        for host, lag in reading.lags.items():
            if lag > max_lag:
                raise PreflightRefused(f"{host} lags {lag:.0f}s behind the primary (limit {max_lag:.0f}s)",
                                       hint="wait until it has caught up, or raise planning.max_member_lag")

    def _versions_disk_oplog(self, ctx: StepContext) -> None:
        facts = {h: ctx.inspector.server_facts(h) for h in ctx.keep_hosts + ctx.move_hosts}
        versions = {f["version"] for f in facts.values()}
        fcvs = {f["fcv"] for f in facts.values()}
        if len(versions) > 1 or len(fcvs) > 1:
            raise PreflightRefused("mixed versions/FCV: " + ", ".join(
                f"{h} {f['version']}/FCV {f['fcv']}" for h, f in facts.items()))
        version = tuple(int(p) for p in next(iter(versions)).split(".")[:2])
        if version < MIN_VERSION:
            raise PreflightRefused(f"mongod {'.'.join(map(str, version))} is older than 4.4")
        for host, f in facts.items():
            self._disk(ctx, host, f)
        planned = parse_duration(ctx.config.planning.expected_duration)
        for host in ctx.keep_hosts:
            window = ctx.inspector.oplog_window_seconds(host)
            ctx.state.oplog_window[host] = window
            # A young oplog (shorter than planned but not yet full) is fine; only a full one limits the window.
            if window >= planned:
                continue
            if self._oplog_full(ctx, host):
                raise PreflightRefused(f"{host}: oplog window {window:.0f}s is shorter than the planned "
                                       f"{planned:.0f}s", hint="grow the oplog (replSetResizeOplog) or plan a "
                                       "shorter split (planning.expected_duration)")
            ctx.progress(f"warning: {host}'s oplog spans only {window:.0f}s of the planned {planned:.0f}s; it is "
                         "not full yet, but the catch-up needs the split optime to stay in it until the cutover")

    @staticmethod
    def _disk(ctx: StepContext, host: str, facts: dict) -> None:
        """A small share of a big disk is plenty: nothing is copied, but the cleanup's deletes (and a PSA set's
        history store while a member lags) grow the files, at worst by about the data's own size. So a low
        share alone warns; it refuses when the free space is also below min_free_disk_vs_data x the data."""
        planning = ctx.config.planning
        free, share, data = facts["free_bytes"], facts["free_fraction"], facts.get("data_bytes") or 0
        if share is None or share >= planning.min_free_disk_fraction:
            return
        low = f"{host}: only {share:.1%} disk free (minimum {planning.min_free_disk_fraction:.0%})"
        needed = planning.min_free_disk_vs_data * data
        why = f"{planning.min_free_disk_vs_data:g} x its {_size(data)} of data"
        if free < needed:
            raise PreflightRefused(f"{low}: {_size(free)} free, less than the {_size(needed)} needed ({why})",
                                   hint="free disk space first, or lower planning.min_free_disk_vs_data if you "
                                   "know the headroom suffices")
        ctx.progress(f"warning: {low}, but its {_size(free)} free cover the {_size(needed)} needed ({why})")

    @staticmethod
    def _oplog_full(ctx: StepContext, host: str) -> bool:
        stats = ctx.member(host).local.command("collStats", "oplog.rs")
        return bool(stats.get("maxSize")) and stats.get("size", 0) >= 0.9 * stats["maxSize"]

    def _arbiters_free(self, ctx: StepContext) -> None:
        kept = source_arbiter_kept(ctx)
        for arbiter in (ctx.config.arbiters.source, ctx.config.arbiters.target):
            if arbiter is ctx.config.arbiters.source and kept:
                continue
            if ctx.inspector.listening(arbiter.host):
                raise BadInput(f"something already answers on {arbiter.name}'s address {arbiter.host}",
                               hint="choose a free port for the arbiter or stop what runs there")

    def _routing_keys(self, ctx: StepContext) -> None:
        client = ctx.member(ctx.source_primary())
        routing = ctx.config.routing
        for db in routing.databases:
            if db not in client.list_database_names():
                raise BadInput(f"routed database {db!r} does not exist on {ctx.source_name}")
        for db, coll in ctx.inspector.list_namespaces(client):
            routed = routing.routed(db, coll)
            if routed is None or client[db][coll].estimated_document_count() == 0:
                continue
            if client[db][coll].find_one({routed.key: {"$exists": True}}, {"_id": 1}) is None:
                raise BadInput(f"routing key {routed.key!r} is absent from {routed.namespace}",
                               hint=f"set routing.collections['{routed.namespace}'] to its key, or exclude it")

    def _residues_held(self, ctx: StepContext) -> None:
        """A split hands over only residues its source holds, by the routing published by an earlier split."""
        doc = ctx.member(ctx.source_primary())[DATABASE][COLLECTION].find_one({"_id": DOCUMENT_ID})
        published = RoutingDocument.from_bson(doc) if doc else None
        refusal = moved_residue_refusal(ctx.config.routing, published, ctx.source_name, ctx.target_name)
        if refusal:
            raise BadInput(refusal, hint=f"give {ctx.target_name} only residues {ctx.source_name} owns, and keep "
                           "every other residue with its owner")

    def apply(self, ctx: StepContext) -> None:
        # The routing is pinned once preflight passed (not before: a refused routing must stay fixable); every
        # later command refuses a split.yaml whose routing differs.
        if ctx.state.routing_pin is None:
            ctx.state.routing_pin = ctx.config.routing.pin()
        if ctx.state.original_config is None:  # rollback restores these members
            config = ctx.inspector.config(ctx.source_primary())
            ctx.state.original_config = OriginalConfig(
                version=config.version, members=tuple(MemberRecord.from_doc(m) for m in config.raw["members"]))

    def verify(self, ctx: StepContext) -> None:
        self.check(ctx.state.original_config is not None, "rs1's original config was not recorded")
        self.check(ctx.state.routing_pin is not None, "the routing was not pinned")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"
