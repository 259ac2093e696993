"""`splitter demo`: the whole story on a throw-away lab of real mongod processes."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
from pymongo import MongoClient
from rich.table import Table

from splitter.cli.cleanup_cmd import cleanup
from splitter.cli.output import console, console_bus, say
from splitter.engine.gates import GateKeeper
from splitter.engine.plan import build_plan
from splitter.engine.runner import Runner
from splitter.engine.session import open_session
from splitter.lab.app import LabApp
from splitter.lab.lab import Lab
from splitter.lab.layout import COLLECTIONS, DATABASE, KEY
from splitter.lab.netns import NetnsLab
from splitter.steps.registry import all_steps
from splitter.store.lock import StateLock


def set_client(lab: Lab, name: str) -> MongoClient:
    nodes = ("node1", "node2") if name == "rs1" else ("node3", "node4")
    return MongoClient(f"mongodb://{','.join(lab.layout.host(n).host for n in nodes)}/?replicaSet={name}",
                       retryWrites=True, serverSelectionTimeoutMS=5000)


def demo_app(lab: Lab) -> LabApp:
    """The 'application': writes users of both halves and follows the routing document splitter publishes
    (it connects to rs2 once rs2 exists: see LabApp.connect)."""
    return LabApp({"rs1": set_client(lab, "rs1")}, "rs1", threads=2, users=64, interval=0.02, max_op_seconds=600)


def _halves(client: MongoClient) -> dict[str, tuple[int, int]]:
    db = client[DATABASE]
    return {c: (db[c].count_documents({KEY: {"$mod": [2, 0]}}), db[c].count_documents({KEY: {"$mod": [2, 1]}}))
            for c in COLLECTIONS}


def _summary(lab: Lab, app: LabApp) -> None:
    table = Table("set", "members", "collection", "even half (rs1's)", "odd half (rs2's)")
    for name, nodes in (("rs1", ("node1", "node2")), ("rs2", ("node3", "node4"))):
        seeds = ",".join(lab.layout.host(n).host for n in nodes)
        with MongoClient(f"mongodb://{seeds}/?replicaSet={name}", serverSelectionTimeoutMS=10000) as client:
            states = client.admin.command("replSetGetStatus")["members"]
            # Loopback lab: members differ by port; netns lab: by address (all on 27017).
            members = ", ".join(f"{m['name'].rsplit(':', 1)[int(m['name'].startswith('127.'))]} {m['stateStr']}"
                                for m in states)
            for coll, (even, odd) in _halves(client).items():
                table.add_row(name, members, coll, str(even), str(odd))
                members = ""
    console.print(table)
    check = app.check()
    console.print(f"application writes during the split: {app.acknowledged} acknowledged, {len(app.failures)} failed; "
                  f"{check.checked} documents on their owner with their last value, {check.deleted_checked} deleted "
                  f"ones absent{'' if check.ok else ': PROBLEMS ' + '; '.join(check.problems[:3])}")
    console.print(f"rs2's users' longest write stall at the switch: {app.stall():.2f}s (the application follows "
                  f"splitter.routing: it holds their writes while `fenced`, then writes them to rs2)")


@click.command()
@click.option("--dir", "lab_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Lab directory (default: a new temporary directory).")
@click.option("--base-port", default=27017, show_default=True)
@click.option("--docs", default=20_000, show_default=True)
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards (stop it with `splitter lab down`).")
@click.option("--network", type=click.Choice(["local", "netns"]), default="local", show_default=True,
              help="netns: six hosts in network namespaces, mongod on 27017, every host action over SSH "
                   "(needs root and sshd; slower).")
def demo(lab_dir: Path | None, base_port: int, docs: int, keep: bool, network: str) -> None:
    """Lab up, plan, split end to end (gates auto-confirmed), verify, clean up, summary, lab down."""
    root = lab_dir or Path(tempfile.mkdtemp(prefix="splitter-demo-"))
    lab = (NetnsLab if network == "netns" else Lab)(root, base_port, progress=say)
    started = time.monotonic()
    try:
        lab.up(docs)
        ctx = open_session(lab.layout.config_path, dry_run=True, events=console_bus())
        plan = build_plan(ctx, all_steps())
        say(f"plan: {len(plan)} steps, point of no return at "
            f"{next(s.id for s in plan if not s.reversible)}; running them now")
        ctx = open_session(lab.layout.config_path, dry_run=False, events=console_bus(), auto_confirm=True)
        app = demo_app(lab).start()
        try:
            lock = StateLock(ctx.config.state_path)
            lock.acquire("splitter demo")
            try:
                Runner(ctx, all_steps(), GateKeeper(ctx, auto_yes=True), until="catch-up").run()
                app.connect("rs2", set_client(lab, "rs2"))  # client v2 knows rs2
                Runner(ctx, all_steps(), GateKeeper(ctx, auto_yes=True)).run()  # the lab finalizes by itself
            finally:
                lock.release()
        finally:
            app.stop()
        say("cleanup: one pass per set (each deletes the other set's half, interlocked, w:majority)")
        cleanup.main(["-c", str(lab.layout.config_path), "--set", "both"], standalone_mode=False)
        _summary(lab, app)
        say(f"demo finished in {time.monotonic() - started:.0f}s")
    finally:
        if not keep:
            lab.down()
            say(f"lab stopped; files left in {root}" if lab_dir else "lab stopped")
