"""How this process reports: verbosity, log format, metrics file. Set once from the command line's global options.

The CLI group fills `SETTINGS` before a command runs; library use (tests, the bench) keeps the defaults or sets
them itself. Everything that builds an observer (console, logging, metrics) reads them from here, so no command
has to pass them through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2


@dataclass
class ObserveSettings:
    """`verbosity`: -1 quiet (warnings and errors), 0 normal, 1 verbose (-v), 2 debug (-vv)."""

    verbosity: int = NORMAL
    log_format: LogFormat = "text"
    metrics_file: Path | None = None
    command: str | None = None  # the subcommand being run (`run`, `cleanup`, ...), for command.* events

    @property
    def json(self) -> bool:
        return self.log_format == "json"


SETTINGS = ObserveSettings()


def configure(*, verbose: int = 0, quiet: bool = False, log_format: str = "text", metrics_file: Path | None = None,
              command: str | None = None) -> ObserveSettings:
    """Fill SETTINGS from the global options (quiet wins over verbose)."""
    SETTINGS.verbosity = QUIET if quiet else min(verbose, DEBUG)
    SETTINGS.log_format = "json" if log_format == "json" else "text"
    SETTINGS.metrics_file = metrics_file
    SETTINGS.command = command
    return SETTINGS
