"""plan / run / confirm / rollback (status: status_cmd.py)."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path

import click

from splitter.cli.output import config_option, console, console_bus, say
from splitter.config import load_config
from splitter.engine.gates import GATE_IDS, GateKeeper, confirm_refusal
from splitter.engine.plan import build_plan
from splitter.engine.rollback import Rollback, rollback_refusal
from splitter.engine.runner import Runner
from splitter.engine.session import open_session
from splitter.errors import BadInput, OperationalError
from splitter.steps.base import Step
from splitter.steps.registry import STEP_IDS, all_steps
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles
from splitter.store.gatefiles import write_confirmation
from splitter.store.lock import StateLock


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {id, title, actions, reversible}.")
def plan(config_path: Path, as_json: bool) -> None:
    """Read-only: check the live cluster and hosts, then show every step's exact actions."""
    ctx = open_session(config_path, dry_run=True, events=console_bus(quiet=as_json))
    steps = build_plan(ctx, all_steps())
    if as_json:
        click.echo(json.dumps([s.to_json() for s in steps], indent=2))
        return
    for number, step in enumerate(steps):
        flag = "" if step.reversible else " [red](irreversible)[/]"
        console.print(f"\n[bold]{number:>2}. {step.id}[/] [dim]({step.state})[/]{flag} — {step.title}")
        for action in step.actions:
            console.print(f"      • {action}", soft_wrap=True)
    console.print(f"\nnext: splitter run -c {config_path}")


@click.command()
@config_option
@click.option("--yes", is_flag=True, help="Confirm every gate automatically (lab and demo; in production confirm "
              "each gate after the app change).")
@click.option("--yes-cutover", is_flag=True, help="Finalize the cutover by itself once its verification passed "
              "(with --yes this is implied on the lab inventory only).")
@click.option("--step", "step_mode", is_flag=True, help="Ask before each step.")
@click.option("--until", type=click.Choice(STEP_IDS), help="Stop after this step.")
def run(config_path: Path, yes: bool, yes_cutover: bool, step_mode: bool, until: str | None) -> None:
    """Run the split from the checkpoint: each step is prechecked, applied, verified, then checkpointed.

    The last step switches the traffic and keeps the way back running until `splitter finalize`."""
    lock = locked(config_path, "splitter run")
    try:
        # The state is read only once the lock is held: a run that finished meanwhile has saved its steps.
        ctx = open_session(config_path, dry_run=False, events=console_bus(), auto_confirm=yes)
    except BaseException:
        lock.release()
        raise
    ctx.yes_cutover = yes_cutover
    try:

        def ask(step: Step) -> bool:
            return click.confirm(f"run step {step.id} ({step.title})?", default=True)

        runner = Runner(ctx, all_steps(), GateKeeper(ctx, yes), until=until, ask=ask if step_mode else None)
        completed = runner.run()
    finally:
        lock.release()
        ctx.inspector.connector.close()
    remaining = [s for s in STEP_IDS if ctx.state.step(s).state != "done"]
    if remaining:
        say(f"stopped after {until or (completed[-1] if completed else 'nothing')}; next step: {remaining[0]} "
            f"(`splitter run -c {config_path}`)")
    else:
        say(f"split complete: {ctx.source_name} = {', '.join(ctx.keep_hosts)} + {ctx.config.arbiters.source.host}; "
            f"{ctx.target_name} = {', '.join(ctx.move_hosts)} + {ctx.config.arbiters.target.host}")


@click.command()
@config_option
@click.argument("gate", type=click.Choice(GATE_IDS))
def confirm(config_path: Path, gate: str) -> None:
    """Tell a waiting `splitter run` that the application change for GATE is deployed (refused unless that gate
    is waiting now)."""
    config = load_config(config_path)
    files = StateFiles(config.state_path)
    refusal = confirm_refusal(StateStore(files).load(), StateLock(config.state_path).held(), gate)
    if refusal:
        raise BadInput(f"confirm {gate} refused: {refusal}; nothing was written",
                       hint=f"`splitter status -c {config_path}` shows what is waiting")
    write_confirmation(files, gate, by=f"{getpass.getuser()}@{socket.gethostname()}")
    console.print(f"gate {gate} confirmed ({files.gate_confirmation(gate)})")


@click.command()
@config_option
def rollback(config_path: Path) -> None:
    """Undo the split before rewrite-replset-config: rs1 back to four data nodes, original priorities/votes."""
    lock = locked(config_path, "splitter rollback")
    try:
        # Loaded under the lock: a run that just passed the point of no return has recorded it.
        ctx = open_session(config_path, dry_run=False, events=console_bus())
        reason = rollback_refusal(ctx.state)
        if reason:
            raise OperationalError(f"rollback refused: {reason}")
        Rollback(ctx).run()
    finally:
        lock.release()
    say(f"rolled back: {ctx.source_name} has {', '.join(ctx.keep_hosts + ctx.move_hosts)} again; the explicit "
        "default write concern set by add-arbiter-rs1 was kept")


def locked(config_path: Path, command: str) -> StateLock:
    """The state dir's lock, taken before anything reads the state (the config is validated first)."""
    lock = StateLock(load_config(config_path).state_path)
    lock.acquire(command)
    return lock


COMMANDS = [plan, run, confirm, rollback]
