"""`splitter cleanup`: after `finalize`, each set slowly deletes the half it no longer serves. Parses and prints;
the session (splitter/engine/cleanup_session.py) does the rest."""

from __future__ import annotations

import getpass
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from splitter.cleanup.options import DEFAULT_MAX_LATENCY_INCREASE, PARALLEL_UNTHROTTLED, Options, parse_options
from splitter.cleanup.progress import LineProgress, RichProgress
from splitter.cleanup.schedule import ScheduleSpec, apply_schedule, format_schedule
from splitter.cleanup.worker import DEFAULT_BATCH_SIZE
from splitter.cli.output import config_option, console, console_bus
from splitter.config import SplitConfig, load_config
from splitter.engine.cleanup_session import open_cleanup_session
from splitter.errors import BadInput, OperationalError
from splitter.events import EventBus
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.store.files import StateFiles


def _schedule_spec(config: SplitConfig, opts: Options) -> ScheduleSpec:
    if opts.limits.window is None:
        raise BadInput("the nightly schedule needs --window HH:MM-HH:MM (the timer starts the run when it opens)")
    config_path = Path(config.config_path)
    return ScheduleSpec(set_choice=opts.set_choice, config_path=config_path, window=opts.limits.window,
                        user=getpass.getuser(), workdir=config_path.parent,
                        log_path=config.state_path / f"cleanup-{opts.set_choice}.log", limits=opts.schedule_args)


def _schedule(config: SplitConfig, opts: Options, print_schedule: bool, install_host: str | None,
              remove_host: str | None) -> None:
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


@click.command()
@config_option
@click.option("--set", "set_choice", required=True, metavar="rs1|rs2|both",
              help="The set to clean (its name in split.yaml), or both (one worker per set, each with the limits).")
@click.option("--dry-run", is_flag=True, help="Delete nothing and save no position; report what would be deleted.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Documents per delete command (under a latency budget: the largest batch it may grow to).")
@click.option("--parallel", type=click.IntRange(1, 32), default=None,
              help=f"Delete commands in flight at once; a chunk is --parallel x --batch-size documents. "
                   f"[default: {PARALLEL_UNTHROTTLED} without a budget or --sleep, else 1, the gentlest]")
@click.option("--max-latency-increase", default=DEFAULT_MAX_LATENCY_INCREASE, show_default=True, metavar="Nx|off",
              help="Latency budget: keep the p99 of a probe write (the application's write concern, 20 a second) "
                   "within N times what it was with no deletes; batches shrink and rests grow when it is over, "
                   "and the run pauses when it is twice over. off: delete at full speed.")
@click.option("--max-p99", default=None, metavar="DURATION",
              help="Latency budget: also keep the probe's p99 under this, e.g. 20ms.")
@click.option("--max-docs", type=click.IntRange(min=1), default=None, help="Stop after deleting this many (per set).")
@click.option("--max-runtime", default=None, metavar="DURATION", help="Stop after this long, e.g. 3h.")
@click.option("--max-lag", default=None, metavar="DURATION",
              help="Wait while a secondary lags more than this, or is not a healthy SECONDARY (DOWN, RECOVERING, "
                   "ROLLBACK, unreachable). Default: planning.max_member_lag.")
@click.option("--sleep", "sleep", default="0s", show_default=True, metavar="DURATION|N%",
              help="Rest after each chunk, e.g. 200ms; or N% to delete at most N% of the time.")
@click.option("--window", default=None, metavar="HH:MM-HH:MM",
              help="Local time window; outside it exit 0 at once, and stop when it closes.")
@click.option("--remove-orphans", is_flag=True,
              help="After the walk, also delete the documents kept because the owner lacks them (the "
                   "application deleted them there): only those the owner still lacks in a second majority read "
                   "taken after its majority commit point passed its last write at the first one.")
@click.option("--exact-counts", is_flag=True,
              help="Count what remains and the documents without a routable key exactly at the end (full, "
                   "unthrottled scans); by default these are estimated from what the walk saw.")
@click.option("--json", "as_json", is_flag=True, help="The final report as one JSON line (progress on stderr).")
@click.option("-v", "--verbose", is_flag=True, help="Also print every chunk.")
@click.option("--print-schedule", is_flag=True, help="Print the systemd units (and cron fallback) for these options.")
@click.option("--install-schedule", "install_host", metavar="HOST", default=None,
              help="Install the nightly schedule on HOST (inventory name) through playbooks/cleanup_schedule.yml.")
@click.option("--remove-schedule", "remove_host", metavar="HOST", default=None,
              help="Remove the nightly schedule from HOST.")
def cleanup(config_path: Path, set_choice: str, dry_run: bool, batch_size: int, parallel: int | None,
            max_latency_increase: str, max_p99: str | None, max_docs: int | None, max_runtime: str | None,
            max_lag: str | None, sleep: str, window: str | None, remove_orphans: bool, exact_counts: bool,
            as_json: bool, verbose: bool, print_schedule: bool, install_host: str | None,
            remove_host: str | None) -> None:
    """Delete, from each routed collection, the documents whose key belongs to the other set.

    \b
    Runs only after `splitter finalize` (before it, the other half is the way back). Chunks walk the _id index
    and delete only documents the other set holds *in that same half* (the interlock, majority reads); the rest
    are kept and reported by reason: missing on the other set, in the wrong half there (its key changed after
    the cutover), key not an integer there. Documents with a missing or non-integer key are never deleted.
    Each chunk is acknowledged by a majority before it is recorded: after a crash, rerun the same command.
    By default a latency budget paces the deletes (--max-latency-increase), and --max-lag waits for lagging
    or unhealthy secondaries. --remove-orphans: the owner is authoritative after finalize, so a document
    missing there and present here was deleted by the application; it is removed once a second, later
    majority read on the owner, taken after the owner's majority commit point passed its last write at the
    first read, still lacks it (a write on its way is never taken for a deletion).
    Pause: touch STATE_DIR/cleanup.pause, or send SIGUSR1 (again to continue). SIGTERM: stop after the chunk.
    """
    config = load_config(config_path)
    opts = parse_options(config, set_choice, dry_run=dry_run, batch_size=batch_size, parallel=parallel,
                         max_docs=max_docs, max_runtime=max_runtime, max_lag=max_lag, sleep=sleep, window=window,
                         max_latency_increase=max_latency_increase, max_p99=max_p99, remove_orphans=remove_orphans,
                         exact_counts=exact_counts, as_json=as_json)
    if print_schedule or install_host or remove_host:
        _schedule(config, opts, print_schedule, install_host, remove_host)
        return
    use_bar = sys.stdout.isatty() and not as_json
    events = console_bus(verbose=verbose) if use_bar else EventBus()
    with ExitStack() as stack:
        if use_bar:
            events.subscribe(stack.enter_context(RichProgress(console)))
        else:
            events.subscribe(LineProgress(every=0.0 if verbose else 10.0))
        session = stack.enter_context(open_cleanup_session(config, dry_run=dry_run, events=events))
        report = session.run(opts)
    click.echo(report.to_json_line() if as_json else report.to_text())
    if not report.normal:
        raise OperationalError("cleanup stopped for an unexpected reason", hint="see the report above")
