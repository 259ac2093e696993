"""switch / reverse / finalize: ask the running `splitter run` (request file), or act now when none runs."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import click

from splitter.cli.output import config_option, console_bus, say
from splitter.cutover.protocol import CutoverProtocol, Verb
from splitter.cutover.switch import RealSwitch
from splitter.engine.session import open_session
from splitter.errors import BadInput
from splitter.store.gatefiles import write_request
from splitter.store.lock import StateLock

HELP = {
    "switch": "Switch the moving half to the target again after a reverse (fence, drain, publish, verify).",
    "reverse": "Switch the moving half back to the source (fence the target, drain the way back, publish).",
    "finalize": "Close the way back: stop the reverse stream and mark the cutover final (cleanup may run then).",
}


def _request(config_path: Path, verb: Verb) -> None:
    ctx = open_session(config_path, dry_run=False, events=console_bus())
    try:
        actions = RealSwitch(ctx)
        protocol = CutoverProtocol(ctx, actions)
        if ctx.state.cutover is None:
            raise BadInput(f"{verb}: no cutover has started yet",
                           hint=f"splitter run -c {config_path} (the cutover is its last step)")
        reason = protocol.refusal(verb)
        if reason:
            raise BadInput(f"{verb}: {reason}", hint=f"splitter status -c {config_path}")
        lock = StateLock(ctx.config.state_path)
        holder = lock.held()
        if holder is not None:
            record = write_request(ctx.files, verb, by=f"{getpass.getuser()}@{socket.gethostname()}")
            say(f"{verb} requested ({record.get('at')}); `{holder.get('command', 'splitter run')}` (pid "
                f"{holder.get('pid', '?')}) carries it out; watch it with `splitter status -c {config_path}`")
            return
        lock.acquire(f"splitter {verb}")
        try:
            protocol.act(verb)
        finally:
            actions.stop_stream()
            lock.release()
        cutover = ctx.state.cutover
        say(f"{verb} done: the cutover is {cutover.state} (epoch {cutover.epoch})"
            + ("" if cutover.state == "final" else f"; `splitter run -c {config_path}` keeps the way back running"))
    finally:
        ctx.inspector.connector.close()


def _command(verb: Verb) -> click.Command:
    @click.command(name=verb, help=HELP[verb])
    @config_option
    def command(config_path: Path) -> None:
        _request(config_path, verb)

    return command


COMMANDS = [_command("switch"), _command("reverse"), _command("finalize")]
