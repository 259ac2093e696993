"""`splitter verify`: both halves (or one) equal on the source set and the new set, by counts and hashes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from pymongo import MongoClient, ReadPreference
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from splitter.cli.output import config_option
from splitter.cluster.connect import Connector
from splitter.config import SplitConfig, load_config
from splitter.engine.session import check_routing_pin
from splitter.errors import BadInput, OperationalError
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles
from splitter.verify.compare import compare_sets
from splitter.verify.report import VerifyReport, id_to_text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def resolve_halves(config: SplitConfig, half: str) -> list[str]:
    """`both` -> both set names; `target` -> the new set's; a set name -> that one; else bad input."""
    names = [config.source.name, config.target.name]
    if half == "target":
        return [config.target.name]
    if half == "both":
        return names
    if half in names:
        return [half]
    raise BadInput(f"--half {half}: expected {names[0]}, {names[1]}, target or both")


def _reachable(client: MongoClient, name: str, hosts: list[str]) -> MongoClient:
    try:
        client.admin.command("ping", read_preference=ReadPreference.SECONDARY_PREFERRED)
    except PyMongoError as exc:
        detail = re.sub(r" \(configured timeouts:[^)]*\)", "", str(exc).split(", Timeout:")[0])[:300]
        raise OperationalError(
            f"cannot reach replica set {name} at {', '.join(hosts)}: {detail}",
            hint=f"verify needs both sets up: run it after start-arbiter-rs2; check that {name}'s members run") \
            from exc
    return client


def open_sets(config: SplitConfig, connector: Connector) -> tuple[MongoClient, MongoClient]:
    """(source set on the keep members, new set on the move members), each checked to answer a ping."""
    pairs = [(config.source.name, [m.host for m in config.keep_members]),
             (config.target.name, [m.host for m in config.move_members])]
    source, target = (_reachable(connector.replica_set(name, hosts), name, hosts) for name, hosts in pairs)
    return source, target


def _samples_text(report: VerifyReport, index: int) -> str:
    result = report.results[index]
    parts = []
    for label, count, ids in (("missing", result.missing_count, result.missing),
                              ("extra", result.extra_count, result.extra),
                              ("different", result.different_count, result.different)):
        if count:
            more = ", ..." if count > len(ids) else ""
            parts.append(f"{count} {label}" + (f": {', '.join(id_to_text(i) for i in ids)}{more}" if ids else ""))
    return "; ".join(parts)


def render(report: VerifyReport) -> Table:
    """The table: one row per collection and half, then the unclaimed documents (shown, not compared)."""
    table = Table("collection", "half", f"{report.source_name} count", f"{report.target_name} count", "match",
                  "samples", title=f"verify {report.source_name} vs {report.target_name}")
    for index, result in enumerate(report.results):
        match = "[green]yes[/]" if result.ok else "[bold red]NO[/]"
        table.add_row(result.namespace, result.half, str(result.count_source), str(result.count_target), match,
                      _samples_text(report, index))
    for unclaimed in report.unclaimed:
        if unclaimed.count_source or unclaimed.count_target:
            table.add_row(unclaimed.namespace, "unclaimed", str(unclaimed.count_source), str(unclaimed.count_target),
                          "[dim]not compared[/]", f"{unclaimed.key} missing or not an integer")
    return table


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option("--samples", type=click.IntRange(min=0), default=5, show_default=True,
              help="List up to N _ids per collection and half that are missing, extra or different.")
@click.option("--half", default="target", show_default=True, metavar="SET|target|both",
              help="Which halves to compare (default: the new set's half); each must match. The new set's half "
                   "is the one the "
                   "cutover relies on (catch-up keeps it equal). The new set's copy of the source set's half is "
                   "as of the split, so it differs once that half was written since. A half that cleanup has "
                   "deleted on one set can no longer be compared.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Parallel range reads (each reads from one set).")
@click.option("--range-docs", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Documents per _id range (the unit hashed, and re-read when it differs).")
def verify(config_path: Path, as_json: bool, samples: int, half: str, workers: int, range_docs: int) -> None:
    """Compare each routed collection's halves on both sets: counts and content hashes.

    \b
    Reads only, from secondaries when there are any. Usable any time after
    start-arbiter-rs2. Exit 0 when every compared half matches, 1 otherwise (the
    message names the differing collections and _ids), 2 for bad input.
    Documents whose key is missing or not an integer are counted, never compared.
    """
    config = load_config(config_path)
    check_routing_pin(config, StateStore(StateFiles(config.state_path)).load())
    halves = resolve_halves(config, half)
    connector = Connector(config.credentials)
    try:
        source, target = open_sets(config, connector)
        report = compare_sets(source, target, config.routing, halves, samples=samples, workers=workers,
                              range_docs=range_docs, source_name=config.source.name,
                              target_name=config.target.name,
                              progress=lambda message: err_console.print(f"[dim]·[/] {message}"))
    finally:
        connector.close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        console.print(render(report))
    if not report.ok:
        raise OperationalError(f"verify: halves differ between {config.source.name} and {config.target.name}:\n"
                               + report.summary(),
                               hint="if writes are still being caught up, wait and run verify again")
    if not as_json:
        console.print(f"[green]ok:[/] {report.summary()}")
