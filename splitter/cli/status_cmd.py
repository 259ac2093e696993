"""`splitter status`: where the split stands, what runs, and what to do next; `--watch` redraws it."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from splitter.cli.output import config_option, console, console_bus
from splitter.engine.session import open_session
from splitter.engine.status import collect_status, topology
from splitter.run_context import StepContext

STATE_STYLE = {"done": "green", "running": "bold cyan", "waiting": "bold yellow", "failed": "bold red",
               "pending": "dim"}


def duration(seconds: float | None) -> str:
    """12.3 -> '12s', 83 -> '1m 23s', 7500 -> '2h 05m'."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def local_time(iso: str | None) -> str:
    """An ISO timestamp as local HH:MM:SS, or MM-DD HH:MM when it is not today."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    today = datetime.now().astimezone().date()
    return moment.strftime("%H:%M:%S" if moment.date() == today else "%m-%d %H:%M")


def steps_table(report: dict[str, Any]) -> Table:
    """One row per step. Step names are never cut; the error wraps in the room left (80 columns suffice)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    longest = max(len(row["id"]) for row in report["steps"])
    for header, width in (("#", 2), ("step", longest), ("state", 7), ("started", 8), ("duration", 6),
                          ("attempts", 8)):
        table.add_column(header, no_wrap=header != "started", min_width=width,  # a date may wrap below the time
                         justify="right" if header in ("#", "duration", "attempts") else "left")
    table.add_column("last error", overflow="fold", ratio=1, min_width=10)
    for row in report["steps"]:
        table.add_row(str(row["number"]), row["id"], f"[{STATE_STYLE.get(row['state'], '')}]{row['state']}[/]",
                      local_time(row["started"]), duration(row["seconds"]), str(row["attempts"] or ""),
                      escape(row["error"] or ""))
    return table


def _holder(holder: dict[str, Any] | None, idle: str) -> str:
    if not holder:
        return idle
    return (f"[bold]{escape(str(holder.get('command', '?')))}[/] pid {holder.get('pid', '?')} on "
            f"{escape(str(holder.get('host', '?')))} since {local_time(holder.get('since'))}")


def _catch_up_line(stream: str, doc: dict[str, Any]) -> str:
    counters = doc.get("counters") or {}
    lag = doc.get("lag_seconds")
    lag_text = "lag ?" if lag is None else f"lag {lag:g}s / {doc.get('lag_events') or 0:,} events"
    rate = doc.get("rate_per_second")
    source, drain = doc.get("source_rate_per_second"), doc.get("drain_estimate_seconds")
    keeping = "" if source is None else (f"; source writes {source:,.1f} entries/s, "
                                         + ("[bold red]not keeping up[/]" if drain is None and (doc.get("lag_events")
                                                                                               or 0) > 0
                                            else f"drains in ~{drain:g}s"))
    return (f"catch-up {stream}: {lag_text}, {rate or 0:,.1f} events/s{keeping}; {counters.get('events', 0):,} "
            f"events, {counters.get('applied', 0):,} applied, {counters.get('deleted', 0):,} deleted "
            f"[dim](updated {local_time(doc.get('updated_at'))})[/]")


def _cleanup_line(set_name: str, doc: dict[str, Any]) -> str:
    state = "done" if doc["done"] else "in progress"
    return (f"cleanup {set_name}: {doc['deleted']:,} deleted, {doc['kept']:,} kept by the interlock, {state} "
            f"({len(doc['namespaces'])} collections) [dim](updated {local_time(doc['updated'])})[/]")


def details(report: dict[str, Any]) -> list[str]:
    """The lines under the table: gates, pause file, streams, cleanup, split point, cutover, topology."""
    lines = []
    gates = report["gates"]
    lines.append("gates: " + "; ".join(
        f"{gate} [bold]{info['state']}[/]" + (f" ({local_time(info['at'])}, {escape(str(info['by']))})"
                                               if info.get("by") else "") for gate, info in gates.items()))
    pause = report["pause_file"]
    lines.append(f"pause file: {'[bold yellow]present[/]' if pause['present'] else 'absent'} ({pause['path']})")
    for stream, doc in report["catch_up_streams"].items():
        if doc:
            lines.append(_catch_up_line(stream, doc))
    for set_name, doc in report["cleanup"].items():
        lines.append(_cleanup_line(set_name, doc))
    if report["split_optime"]:
        optime = report["split_optime"]
        lines.append(f"split optime: {optime['t']}:{optime['i']}")
    pnr = report["point_of_no_return"]
    lines.append(f"point of no return: [bold]passed[/] at {local_time(pnr['at'])} ({pnr['step']})" if pnr else
                 f"point of no return: not passed (`splitter rollback` can undo the split until "
                 f"{report['point_of_no_return_step']})")
    if report["cutover"]:
        cut = report["cutover"]
        lines.append(f"cutover: [bold]{cut['state']}[/], epoch {cut['epoch']}, {cut['owner']} owns "
                     f"{report['target_set']}'s half" + (f", fenced: {', '.join(cut['fenced'])}"
                                                          if cut.get("fenced") else ""))
    if report["topology"] is None:
        lines.append("[dim]topology: asking the members ...[/]")
    for name, members in (report["topology"] or {}).items():
        lines.append(f"{name}: " + (", ".join(f"{h} {s}" for h, s in members.items()) or "[red]not reachable[/]"))
    return lines


def render(report: dict[str, Any]) -> RenderableType:
    """Header, who runs, what to do next (at the top: a watch in a short terminal keeps it), the steps, the rest."""
    header = Text.from_markup(
        f"[bold]splitter status[/]  {report['source_set']} → {report['target_set']}  [dim]{report['config']}  "
        f"{local_time(report['at'])}[/]")
    parts: list[RenderableType] = [
        header, Text.from_markup(f"run: {_holder(report['run']['holder'], 'no process holds the state directory')}")]
    if report["cleanup_run"]["holder"]:
        parts.append(Text.from_markup(f"cleanup: {_holder(report['cleanup_run']['holder'], '')}"))
    step_next = report["next"]
    parts.append(Text.from_markup(f"[bold]next:[/] {escape(step_next['sentence'])}"))
    if step_next["command"]:
        parts.append(Text.from_markup(f"  [bold cyan]$ {escape(step_next['command'])}[/]"))
    parts += [steps_table(report), *(Text.from_markup(line) for line in details(report))]
    return Group(*parts)


class TopologyPoller:
    """Asks the cluster in a thread of its own, so a watch redraws on time even while members are down (a member
    that does not answer takes the connector's whole timeout)."""

    def __init__(self, ctx: StepContext, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self.latest: dict[str, dict[str, str]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-topology", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.latest = topology(self.ctx)
            self._stop.wait(self.interval)

    def __enter__(self) -> TopologyPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document (with schema_version); with --watch, one "
              "per line each time.")
@click.option("--watch", type=float, is_flag=False, flag_value=2.0, default=None, metavar="SECONDS",
              help="Redraw every SECONDS (2 when none given) until Ctrl-C.")
def status(config_path: Path, as_json: bool, watch: float | None) -> None:
    """Each step's state, start, duration, attempts and last error; who holds the state directory; the gates,
    the pause file, catch-up and cleanup progress, the point of no return, the cutover, the live topology; and
    what to do next, with the command for it."""
    ctx = open_session(config_path, dry_run=True, events=console_bus(quiet=True))

    def snapshot(poller: TopologyPoller | None = None) -> dict[str, Any]:
        ctx.state = ctx.store.load()  # a watch sees what the run wrote since
        report = collect_status(ctx, str(config_path), with_topology=poller is None)
        if poller is not None:
            report["topology"] = poller.latest
        return report

    try:
        if watch is None:
            report = snapshot()
            if as_json:
                click.echo(json.dumps(report, indent=2, default=str))
            else:
                console.print(render(report))
            return
        interval = max(watch, 0.2)
        with TopologyPoller(ctx, interval) as poller:
            if as_json:
                while True:
                    click.echo(json.dumps(snapshot(poller), default=str))
                    time.sleep(interval)
            with Live(render(snapshot(poller)), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render(snapshot(poller)), refresh=True)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends: exit 0
    finally:
        ctx.inspector.connector.close()
