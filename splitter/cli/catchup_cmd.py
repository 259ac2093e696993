"""`splitter catch-up --skip-event TOKEN`: record the operator's decision to skip one change the catch-up cannot
replay (issue 14 item 7), in the stream's position file and the audit log. The next `run` passes over it.

Touches: the state dir only (the position file `catchup-<target>.json`, the audit log), under the run lock.
"""

from __future__ import annotations

import getpass
import re
import socket
from pathlib import Path

import click
from rich.console import Console

from splitter.cli.output import config_option
from splitter.config import load_config
from splitter.errors import BadInput
from splitter.store.audit import AuditLog
from splitter.store.catchup_position import PositionStore
from splitter.store.lock import StateLock

console = Console(highlight=False)


@click.command("catch-up")
@config_option
@click.option("--skip-event", "token", required=True, metavar="TOKEN",
              help="The resume token of the change to skip, as the catch-up's error names it.")
@click.option("--stream", default=None, metavar="NAME", help="The catch-up stream (default: the target set).")
def catch_up(config_path: Path, token: str, stream: str | None) -> None:
    """Skip one change the catch-up stopped on, after repeating it on the target by hand."""
    config = load_config(config_path)
    stream = stream or config.target.name
    if not re.fullmatch(r"[0-9A-Fa-f]{18,}", token):
        raise BadInput(f"--skip-event {token!r}: expected a resume token (hex, as in the catch-up's error)")
    state_dir = config.state_path
    lock = StateLock(state_dir)
    lock.acquire("splitter catch-up")
    try:
        store = PositionStore(state_dir, stream)
        position = store.load()
        if position is None:
            raise BadInput(f"no catch-up position for stream {stream!r} in {state_dir}: nothing to skip",
                           hint=f"the streams with a position: {', '.join(store.files.catchup_streams()) or 'none'}")
        if token not in position.skip_tokens:
            position.skip_tokens.append(token)
            store.save(position)
        AuditLog(state_dir).write({"event": "catchup.skip_event", "stream": stream, "token": token,
                                   "by": f"{getpass.getuser()}@{socket.gethostname()}"})
    finally:
        lock.release()
    console.print(f"catch-up {stream}: the event {token} will be skipped (recorded in {store.path} and the audit "
                  "log); next: `splitter run`")
