"""Console output shared by the commands: timestamped progress lines, tables."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)

config_option = click.option("-c", "--config", "config_path", required=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="The split config (split.yaml).")


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(message)}", soft_wrap=True)
