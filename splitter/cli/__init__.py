"""Command line: `splitter plan|run|confirm|switch|reverse|finalize|status|rollback|verify|cleanup|lab|demo`.

Exit codes: 0 done or stopped as asked, 1 operational failure, 2 bad input (nothing changed),
130 interrupted by Ctrl-C (the checkpoint is consistent; run again to resume).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from splitter.errors import SplitterError
from splitter.observe import finish_commands
from splitter.observe.logs import apply_levels, configure_logging, write_stderr
from splitter.observe.settings import LOG_FORMATS, SETTINGS, configure

err_console = Console(stderr=True, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="splitter")
@click.option("-v", "--verbose", count=True, help="More detail: -v every action and counter, -vv debug logs.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings, errors and the command's result.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              envvar="SPLITTER_LOG_FORMAT", show_envvar=True,
              help="text: timestamped lines on stdout. json: one JSON object per event on stderr (stdout keeps "
                   "only a command's result).")
@click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="SPLITTER_METRICS_FILE", show_envvar=True, metavar="PATH",
              help="Keep a Prometheus textfile here while run/cleanup work (for node_exporter's textfile "
                   "collector: name it *.prom in its directory; one file per command).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_format: str, metrics_file: Path | None) -> None:
    """Split one MongoDB replica set into two without downtime and without losing a write.

    \b
    Typical session:
      splitter plan -c split.yaml          # read-only: checks the cluster, prints every action
      splitter run -c split.yaml           # runs step by step from the checkpoint; waits at gates
      splitter confirm -c split.yaml GATE  # (other terminal) the app change for GATE is deployed
      splitter status -c split.yaml        # where the run is
      splitter verify -c split.yaml        # both halves equal on both sets
      splitter cleanup -c split.yaml --set both   # nightly, throttled deletion of the unused half

    Try it on a local lab of real mongod processes: `splitter demo`.
    Every command takes its config from -c or from $SPLITTER_CONFIG.
    """
    configure(verbose=verbose, quiet=quiet, log_format=log_format, metrics_file=metrics_file,
              command=ctx.invoked_subcommand)
    apply_levels()


def _register() -> None:
    from splitter.cli import cutover_cmd, lab_cmd, run_cmd, status_cmd

    cli.add_command(lab_cmd.lab)
    for command in (*run_cmd.COMMANDS, *cutover_cmd.COMMANDS, status_cmd.status):
        cli.add_command(command)
    for module_name, attr in (("splitter.cli.verify_cmd", "verify"), ("splitter.cli.cleanup_cmd", "cleanup"),
                              ("splitter.cli.demo_cmd", "demo"), ("splitter.cli.catchup_cmd", "catch_up"),
                              ("splitter.cli.grow_cmd", "grow")):
        try:
            module = __import__(module_name, fromlist=[attr])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        cli.add_command(getattr(module, attr))


INTERRUPTED = "interrupted; the checkpoint is consistent: run the same command again to resume"


def report_error(exc: SplitterError) -> None:
    if SETTINGS.json:
        write_stderr(json.dumps({"event": "error", "level": "error", "message": exc.message, "hint": exc.hint,
                                 "exit_code": exc.exit_code}))
        return
    err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
    if exc.hint:
        err_console.print(f"[bold]next:[/] {exc.hint}", soft_wrap=True)


def _report_interrupted() -> None:
    if SETTINGS.json:
        write_stderr(json.dumps({"event": "error", "level": "error", "message": INTERRUPTED, "exit_code": 130}))
    else:
        err_console.print(INTERRUPTED)


def _run() -> int:
    try:
        code = cli.main(standalone_mode=False)
    except SplitterError as exc:
        report_error(exc)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        _report_interrupted()
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError | click.BadParameter) else exc.exit_code
    return code if isinstance(code, int) else 0


def main() -> None:
    # State, audit log, Ansible artifacts and lab files may describe the cluster: owner-only, always.
    os.umask(0o077)
    configure_logging()  # once; the group's options set the levels and the format it follows
    _register()
    code = 1
    try:
        code = _run()
    finally:
        try:
            finish_commands(code)  # command.finished, then the hooks' queue and the metrics file are flushed
        except KeyboardInterrupt:  # a second Ctrl-C while hooks finish: leave them
            code = 130
    sys.exit(code)
