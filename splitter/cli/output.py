"""Console output shared by the commands: the event bus's console subscribers, timestamped lines, the `-c` option.

Two formats (`splitter --log-format text|json`, from the global options in SETTINGS):
- text: one timestamped sentence per event on stdout, as today; `-q` keeps warnings and errors, `-v` adds the
  bookkeeping events (every applier action, catch-up and cleanup counters, finished waits).
- json: one JSON object per event on **stderr** (all events; `-q`: warnings and errors), so that stdout keeps only
  a command's result (`status --json`, `verify --json`, ...) and `2> events.jsonl` collects the log. Log records
  and the final error are JSON objects there too (`"event": "log"`, `"event": "error"`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from splitter.events import Event, EventBus, EventType, Handler
from splitter.observe.logs import write_stderr
from splitter.observe.settings import QUIET, SETTINGS, VERBOSE

console = Console(highlight=False)

config_option = click.option("-c", "--config", "config_path", required=True, envvar="SPLITTER_CONFIG",
                             show_envvar=True, type=click.Path(dir_okay=False, path_type=Path),
                             help="The split config (split.yaml).")

# Shown only with -v: bookkeeping (the audit log and the JSON log keep them all anyway).
VERBOSE_ONLY = frozenset({EventType.ACTION, EventType.HOST_CHECK, EventType.CATCHUP, EventType.CLEANUP_CHUNK,
                          EventType.VERIFY_PROGRESS, EventType.HOOK})
STYLE = {"warning": "[yellow]warning:[/] ", "error": "[bold red]error:[/] "}


def say(message: str) -> None:
    """A sentence outside the event stream (a command's own summary): a console line, or a JSON progress object."""
    if SETTINGS.json:
        write_stderr(json.dumps(Event(EventType.PROGRESS, message).to_json()))
        return
    if SETTINGS.verbosity > QUIET:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(message)}", soft_wrap=True)


def shown(event: Event, verbosity: int) -> bool:
    """Whether the text console prints `event` at `verbosity`."""
    if event.level in ("warning", "error"):
        return True
    if verbosity <= QUIET:
        return False
    return verbosity >= VERBOSE or (event.type not in VERBOSE_ONLY and event.level != "debug")


def console_subscriber(verbose: bool = False) -> Handler:
    """Prints each event's sentence as one timestamped line (bookkeeping events only when verbose)."""

    def show(event: Event) -> None:
        if not shown(event, max(SETTINGS.verbosity, VERBOSE) if verbose else SETTINGS.verbosity):
            return
        prefix = "" if event.message.lower().startswith(event.level) else STYLE.get(event.level, "")
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {prefix}{escape(event.message)}", soft_wrap=True)

    return show


def json_subscriber(event: Event) -> None:
    """One JSON object per event on stderr (warnings and errors only with -q)."""
    if SETTINGS.verbosity <= QUIET and event.level not in ("warning", "error"):
        return
    write_stderr(json.dumps(event.to_json(), default=str))


def console_bus(*, quiet: bool = False, verbose: bool = False) -> EventBus:
    """An event bus that reports to the console in the chosen format. `quiet` (a command printing a JSON result
    on stdout) silences the text console; the JSON log goes to stderr and stays."""
    bus = EventBus()
    if SETTINGS.json:
        bus.subscribe(json_subscriber)
    elif not quiet:
        bus.subscribe(console_subscriber(verbose))
    return bus
