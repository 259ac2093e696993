"""Command line: `splitter plan|run|confirm|status|rollback|verify|cleanup|lab|demo`.

Exit codes: 0 done or stopped as asked, 1 operational failure, 2 bad input (nothing changed),
130 interrupted by Ctrl-C (the checkpoint is consistent; run again to resume).
"""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from splitter.errors import SplitterError

err_console = Console(stderr=True, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="splitter")
def cli() -> None:
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
    """


def _register() -> None:
    from splitter.cli import lab_cmd, run_cmd

    cli.add_command(lab_cmd.lab)
    for command in run_cmd.COMMANDS:
        cli.add_command(command)
    for module_name, attr in (("splitter.cli.verify_cmd", "verify"), ("splitter.cli.cleanup_cmd", "cleanup"),
                              ("splitter.cli.demo_cmd", "demo")):
        try:
            module = __import__(module_name, fromlist=[attr])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        cli.add_command(getattr(module, attr))


def report_error(exc: SplitterError) -> None:
    err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
    if exc.hint:
        err_console.print(f"[bold]next:[/] {exc.hint}", soft_wrap=True)


def main() -> None:
    # State, audit log, Ansible artifacts and lab files may describe the cluster: owner-only, always.
    os.umask(0o077)
    _register()
    try:
        code = cli.main(standalone_mode=False)
    except SplitterError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("interrupted; the checkpoint is consistent: run the same command again to resume")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError | click.BadParameter) else exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; the checkpoint is consistent: run the same command again to resume")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
