"""Console output shared by the commands: the event bus's console subscriber, timestamped lines, tables."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from splitter.events import Event, EventBus, EventType, Handler

console = Console(highlight=False)

config_option = click.option("-c", "--config", "config_path", required=True,
                             type=click.Path(dir_okay=False, path_type=Path),
                             help="The split config (split.yaml).")

# Shown only with -v: every change the applier makes (the audit log keeps them all anyway).
VERBOSE_ONLY = frozenset({EventType.ACTION, EventType.CATCHUP, EventType.CLEANUP_CHUNK, EventType.VERIFY_PROGRESS})


def say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(message)}", soft_wrap=True)


def console_subscriber(verbose: bool = False) -> Handler:
    """Prints each event's sentence as one timestamped line (bookkeeping events only with `verbose`)."""

    def show(event: Event) -> None:
        if event.type in VERBOSE_ONLY and not verbose:
            return
        say(event.message)

    return show


def console_bus(*, quiet: bool = False, verbose: bool = False) -> EventBus:
    """An event bus that prints to the console (nothing when `quiet`)."""
    bus = EventBus()
    if not quiet:
        bus.subscribe(console_subscriber(verbose))
    return bus
