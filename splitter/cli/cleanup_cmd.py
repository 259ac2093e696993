"""`splitter cleanup`: after the cutover, each set slowly deletes the half it no longer serves."""

from __future__ import annotations

import getpass
import sys
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
from pymongo import MongoClient
from rich.console import Console

from splitter.cleanup.control import CleanupLock, RunControl
from splitter.cleanup.progress import PlainProgress, ProgressSink, RichProgress
from splitter.cleanup.report import CleanupReport
from splitter.cleanup.schedule import ScheduleSpec, apply_schedule, format_schedule
from splitter.cleanup.throttle import Limits, Throttler, Window, parse_sleep
from splitter.cleanup.worker import DEFAULT_BATCH_SIZE, CleanupWorker
from splitter.cli.output import config_option
from splitter.cluster.connect import Connector
from splitter.config import SplitConfig, load_config, parse_duration
from splitter.errors import BadInput, OperationalError
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles

PARALLEL_UNTHROTTLED = 4


@dataclass(frozen=True)
class Options:
    """The parsed command line."""

    set_choice: str
    dry_run: bool
    batch_size: int
    parallel: int
    limits: Limits
    as_json: bool
    schedule_args: tuple[tuple[str, str], ...]


def _duration(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from exc
    if value <= 0:
        raise BadInput(f"{name}: must be more than zero, got {text!r}")
    return value


def _sets(config: SplitConfig, choice: str) -> list[str]:
    names = [config.source.name, config.target.name]
    if choice == "both":
        return names
    if choice not in names:
        raise BadInput(f"--set {choice!r}: use {names[0]}, {names[1]} or both (the set names in split.yaml)")
    return [choice]


def _options(config: SplitConfig, set_choice: str, dry_run: bool, batch_size: int, parallel: int | None,
             max_docs: int | None, max_runtime: str | None, max_lag: str | None, sleep: str, window: str | None,
             as_json: bool) -> Options:
    _sets(config, set_choice)
    try:
        sleep_seconds, duty = parse_sleep(sleep)
        parsed_window = Window.parse(window) if window else None
        lag = parse_duration(max_lag or config.planning.max_member_lag)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    limits = Limits(max_docs=max_docs, max_runtime=_duration("--max-runtime", max_runtime), max_lag=lag,
                    sleep=sleep_seconds, duty_cycle=duty, window=parsed_window)
    given = (("--batch-size", str(batch_size)), ("--parallel", parallel), ("--max-docs", max_docs),
             ("--max-runtime", max_runtime),
             ("--max-lag", max_lag), ("--sleep", None if sleep in ("0", "0s") else sleep))
    schedule_args = tuple((name, str(value)) for name, value in given if value is not None)
    # Throttled runs delete one batch at a time, each acknowledged by a majority: several in flight let the
    # secondaries fall a chunk behind, and the application's w:"majority" writes wait for them (bench/README).
    return Options(set_choice, dry_run, batch_size, parallel or (1 if limits.rests else PARALLEL_UNTHROTTLED),
                   limits, as_json, schedule_args)


def _schedule_spec(config: SplitConfig, opts: Options) -> ScheduleSpec:
    if opts.limits.window is None:
        raise BadInput("the nightly schedule needs --window HH:MM-HH:MM (the timer starts the run when it opens)")
    config_path = Path(config.config_path)
    return ScheduleSpec(set_choice=opts.set_choice, config_path=config_path, window=opts.limits.window,
                        user=getpass.getuser(), workdir=config_path.parent,
                        log_path=config.state_path / f"cleanup-{opts.set_choice}.log", limits=opts.schedule_args)


def _refuse_before_cutover(config: SplitConfig) -> None:
    cutover = StateStore(StateFiles(config.state_path)).load().cutover
    if cutover is None:
        raise OperationalError(
            f"the cutover is not recorded in {config.state_path}: clients may still read and write both halves "
            f"on {config.source.name}, so deleting either half now would lose data they serve",
            hint="finish `splitter run` (deploy-client-v2) first")


def _clients(config: SplitConfig, connector: Connector) -> dict[str, MongoClient]:
    return {config.source.name: connector.replica_set(config.source.name, [m.host for m in config.keep_members]),
            config.target.name: connector.replica_set(config.target.name, [m.host for m in config.move_members])}


def run_cleanup(config: SplitConfig, opts: Options, progress: ProgressSink, control: RunControl,
                connector: Connector | None = None) -> CleanupReport:
    """Refuse before the cutover, stop at once outside the window, else run one worker per chosen set."""
    _refuse_before_cutover(config)
    opening = Throttler(opts.limits).opening(datetime.now())
    if opening.action == "stop":
        return CleanupReport(stop_kind=opening.kind, stop_reason=opening.reason)
    connector = connector or Connector(config.credentials)
    with ExitStack() as stack:
        if not opts.dry_run:
            stack.enter_context(CleanupLock(config.state_path))
        clients = _clients(config, connector)
        workers = [CleanupWorker(routing=config.routing, set_name=name, this=clients[name],
                                 other=clients[config.partner(name)], other_set=config.partner(name),
                                 state_dir=config.state_path,
                                 limits=opts.limits, batch_size=opts.batch_size, parallel=opts.parallel,
                                 dry_run=opts.dry_run,
                                 control=control, progress=progress)
                   for name in _sets(config, opts.set_choice)]
        with ThreadPoolExecutor(len(workers), thread_name_prefix="cleanup") as pool:
            futures = [pool.submit(w.run) for w in workers]
            try:
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                if any(f.exception() is not None for f in finished):
                    control.request_stop("stopped because the other set's cleanup failed")
                reports = [f.result() for f in futures]
            except BaseException:  # Ctrl-C included: let every worker finish its chunk and save its position
                control.request_stop("interrupted")
                raise
    return CleanupReport(sets=reports)


@click.command()
@config_option
@click.option("--set", "set_choice", required=True, metavar="rs1|rs2|both",
              help="The set to clean (its name in split.yaml), or both (one worker per set, each with the limits).")
@click.option("--dry-run", is_flag=True, help="Delete nothing and save no position; report what would be deleted.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Documents per delete command; smaller lowers the application's tail latency while it runs, "
                   "larger deletes faster.")
@click.option("--parallel", type=click.IntRange(1, 32), default=None,
              help=f"Delete commands in flight at once; a chunk is --parallel x --batch-size documents. "
                   f"[default: {PARALLEL_UNTHROTTLED}, or 1 with --sleep, the gentlest]")
@click.option("--max-docs", type=click.IntRange(min=1), default=None, help="Stop after deleting this many (per set).")
@click.option("--max-runtime", default=None, metavar="DURATION", help="Stop after this long, e.g. 3h.")
@click.option("--max-lag", default=None, metavar="DURATION",
              help="Wait while a secondary lags more than this. Default: planning.max_member_lag.")
@click.option("--sleep", "sleep", default="0s", show_default=True, metavar="DURATION|N%",
              help="Rest after each chunk, e.g. 200ms; or N% to delete at most N% of the time.")
@click.option("--window", default=None, metavar="HH:MM-HH:MM",
              help="Local time window; outside it exit 0 at once, and stop when it closes.")
@click.option("--json", "as_json", is_flag=True, help="The final report as one JSON line.")
@click.option("--print-schedule", is_flag=True, help="Print the systemd units (and cron fallback) for these options.")
@click.option("--install-schedule", "install_host", metavar="HOST", default=None,
              help="Install the nightly schedule on HOST (inventory name) through playbooks/cleanup_schedule.yml.")
@click.option("--remove-schedule", "remove_host", metavar="HOST", default=None,
              help="Remove the nightly schedule from HOST.")
def cleanup(config_path: Path, set_choice: str, dry_run: bool, batch_size: int, parallel: int | None,
            max_docs: int | None, max_runtime: str | None, max_lag: str | None, sleep: str, window: str | None,
            as_json: bool,
            print_schedule: bool, install_host: str | None, remove_host: str | None) -> None:
    """Delete, from each routed collection, the documents whose key belongs to the other set.

    \b
    Chunks walk the _id index and delete only documents that exist on the other set (the interlock), as
    --parallel batches at once, each chunk acknowledged by a majority before it is recorded; documents with a
    missing or non-integer key are never deleted. The position is saved with every chunk: after a crash,
    rerun the same command. Refuses to start before the cutover.
    Pause: touch STATE_DIR/cleanup.pause, or send SIGUSR1 (again to continue). SIGTERM: stop after the chunk.
    """
    config = load_config(config_path)
    opts = _options(config, set_choice, dry_run, batch_size, parallel, max_docs, max_runtime, max_lag, sleep, window,
                    as_json)
    if print_schedule or install_host or remove_host:
        spec = _schedule_spec(config, opts)
        if print_schedule:
            click.echo(format_schedule(spec, config.inventory_path), nl=False)
        for host, present in ((install_host, True), (remove_host, False)):
            if host:
                adapter = AnsibleAdapter(config.inventory_path, StateFiles(config.state_path).ansible_dir)
                result = apply_schedule(adapter, host, spec, present=present)
                verb = "installed on" if present else "removed from"
                click.echo(f"nightly cleanup of {spec.set_choice} {verb} {host} ({spec.unit}; "
                           f"{'changed' if result.changed else 'already so'})")
        return
    control = RunControl(config.state_path)
    use_bar = sys.stdout.isatty() and not as_json
    progress: ProgressSink = RichProgress(Console()) if use_bar else PlainProgress()
    control.install_signals()
    try:
        with ExitStack() as stack:
            if isinstance(progress, RichProgress):
                stack.enter_context(progress)
            report = run_cleanup(config, opts, progress, control)
    finally:
        control.restore_signals()
    click.echo(report.to_json_line() if as_json else report.to_text())
    if not report.normal:
        raise OperationalError("cleanup stopped for an unexpected reason", hint="see the report above")
