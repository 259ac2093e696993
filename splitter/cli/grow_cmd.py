"""`splitter grow plan|run|status|rollback -c grow.yaml`: add new data nodes to a set by initial sync."""

from __future__ import annotations

import json
from pathlib import Path

import click

from splitter.cli.output import console, console_bus, say
from splitter.engine.plan import build_plan
from splitter.errors import RetryableError
from splitter.grow.rollback import GrowRollback
from splitter.grow.session import open_grow_session, run_grow
from splitter.grow.steps.registry import GROW_STEP_IDS, grow_steps
from splitter.store.lock import StateLock

grow_config_option = click.option("-c", "--config", "config_path", required=True, envvar="SPLITTER_GROW_CONFIG",
                                  show_envvar=True, type=click.Path(dir_okay=False, path_type=Path),
                                  help="The grow config (grow.yaml).")


@click.group()
def grow() -> None:
    """Add new data nodes to a replica set: prepare, start, add without votes, initial sync, then votes one
    reconfig at a time. Resumable (run again after any failure) and reversible (`grow rollback`)."""


@grow.command("plan")
@grow_config_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, title, actions, reversible}.")
def plan(config_path: Path, as_json: bool) -> None:
    """Read-only: check the set and the new hosts, then show every step's exact actions."""
    ctx = open_grow_session(config_path, dry_run=True, events=console_bus(quiet=as_json))
    try:
        steps = build_plan(ctx, grow_steps())
    finally:
        ctx.inspector.connector.close()
    if as_json:
        click.echo(json.dumps([s.to_json() for s in steps], indent=2))
        return
    for number, step in enumerate(steps):
        console.print(f"\n[bold]{number:>2}. {step.id}[/] [dim]({step.state})[/] — {step.title}")
        for action in step.actions:
            console.print(f"      • {action}", soft_wrap=True)
    console.print(f"\n(every step can be undone with `splitter grow rollback -c {config_path}`)")
    console.print(f"next: splitter grow run -c {config_path}")


@grow.command("run")
@grow_config_option
@click.option("--until", type=click.Choice(GROW_STEP_IDS), help="Stop after this step.")
def run(config_path: Path, until: str | None) -> None:
    """Run the grow from the checkpoint: each step is prechecked, applied, verified, then checkpointed."""
    ctx = open_grow_session(config_path, dry_run=False, events=console_bus())
    run_grow(ctx, until)
    remaining = [s for s in GROW_STEP_IDS if ctx.state.step(s).state != "done"]
    if remaining:
        say(f"stopped; next step: {remaining[0]} (`splitter grow run -c {config_path}`)")
    else:
        say(f"grow complete: {ctx.source_name} = {', '.join(ctx.grow.hosts + ctx.grow.new_hosts)}")


@grow.command("status")
@grow_config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of lines.")
def status(config_path: Path, as_json: bool) -> None:
    """Where the grow stands: every step from the checkpoint, and each member's state now."""
    ctx = open_grow_session(config_path, dry_run=True, events=console_bus(quiet=True))
    try:
        try:
            members = ctx.inspector.status(ctx.source_primary()).states()
        except RetryableError as exc:
            members = {"error": exc.message}
    finally:
        ctx.inspector.connector.close()
    steps = [{"id": s, "state": ctx.state.step(s).state, "error": ctx.state.step(s).error} for s in GROW_STEP_IDS]
    pending = next((s["id"] for s in steps if s["state"] != "done"), None)
    doc = {"set": ctx.source_name, "steps": steps, "members": members, "next": pending,
           "held_by": StateLock(ctx.config.state_path).held()}
    if as_json:
        click.echo(json.dumps(doc, default=str))
        return
    for s in steps:
        console.print(f"  {s['id']:<22} {s['state']}" + (f"  ({s['error']})" if s["error"] else ""))
    for host, state in members.items():
        console.print(f"  {host:<22} {state}")
    console.print(f"next: splitter grow run -c {config_path}" if pending else "grow complete")


@grow.command("rollback")
@grow_config_option
def rollback(config_path: Path) -> None:
    """Remove the new members (one reconfig each), stop them, and check the set is as it was."""
    ctx = open_grow_session(config_path, dry_run=False, events=console_bus())
    lock = StateLock(ctx.config.state_path)
    lock.acquire("splitter grow rollback")
    try:
        GrowRollback(ctx).run()
    finally:
        lock.release()
        ctx.inspector.connector.close()
    say(f"rolled back: {ctx.source_name} has {', '.join(ctx.grow.hosts)} again; the new members are stopped and "
        "their dbpaths kept (empty them before growing again)")
