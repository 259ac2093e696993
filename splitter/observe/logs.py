"""Python logging, configured once (in `splitter.cli.main`): the diagnostics of splitter's modules and libraries.

What an operator must read is an event (console, JSON log, audit log, hooks); logging is for diagnostics. So by
default only errors of splitter's own modules and warnings of its libraries (pymongo, ansible-runner) are shown;
`-v` adds splitter's info records, `-vv` its debug records, libraries' info and tracebacks; `-q` errors only.
Records are written to stderr in the format of `--log-format`: a timestamped line like the console's, or one
JSON object per record (`"event": "log"`), beside the JSON events.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timezone

from splitter.observe.settings import DEBUG, QUIET, SETTINGS, VERBOSE

SPLITTER_LOGGER = "splitter"
_write_lock = threading.Lock()


def write_stderr(line: str) -> None:
    """One whole line on stderr (the JSON log and the log records share it; lines never interleave)."""
    with _write_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class ConsoleLogHandler(logging.Handler):
    """Formats a record as the console's line or as a JSON object, following SETTINGS at the time it is written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            show_traceback = SETTINGS.verbosity >= DEBUG and record.exc_info
            trace = logging.Formatter().formatException(record.exc_info) if show_traceback else None
            if SETTINGS.json:
                doc = {"event": "log", "at": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                    timespec="milliseconds"), "level": record.levelname.lower(), "message": message,
                    "logger": record.name, **({"traceback": trace} if trace else {})}
                write_stderr(json.dumps(doc, default=str))
                return
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            hint = "" if trace or not record.exc_info else " (-vv shows the traceback)"
            write_stderr(f"{stamp} {record.levelname.lower()}: {message} [{record.name}]{hint}"
                         + (f"\n{trace}" if trace else ""))
        except Exception:  # logging must never raise into the code that logs
            self.handleError(record)


def levels(verbosity: int) -> tuple[int, int]:
    """(splitter's own level, everyone else's level) for a verbosity."""
    if verbosity <= QUIET:
        return logging.ERROR, logging.ERROR
    if verbosity >= DEBUG:
        return logging.DEBUG, logging.INFO
    if verbosity >= VERBOSE:
        return logging.INFO, logging.WARNING
    return logging.ERROR, logging.WARNING


def configure_logging() -> ConsoleLogHandler:
    """Install the one handler on the root logger (replacing an earlier one of ours); levels follow SETTINGS."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, ConsoleLogHandler):
            root.removeHandler(handler)
    handler = ConsoleLogHandler()
    root.addHandler(handler)
    apply_levels()
    return handler


def apply_levels() -> None:
    """Set the loggers' levels from SETTINGS.verbosity (called again once the global options are parsed)."""
    own, others = levels(SETTINGS.verbosity)
    logging.getLogger().setLevel(others)
    logging.getLogger(SPLITTER_LOGGER).setLevel(own)
