"""`splitter lab up|status|down`: a local lab of real mongod processes."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from splitter.cli.output import console_bus
from splitter.lab.lab import Lab

console = Console(highlight=False)

dir_option = click.option("--dir", "lab_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                          help="Directory holding the lab's dbpaths, logs, inventory.yml and split.yaml.")


@click.group()
def lab() -> None:
    """A local lab: rs1 with four data nodes (real mongod), in the write-up's topology."""


@lab.command()
@dir_option
@click.option("--base-port", default=27017, show_default=True, help="node1's port; others at +10 ... +50.")
@click.option("--docs", default=20_000, show_default=True, help="Documents to load into app.*.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Reuse (or save) a cleanly shut down, loaded copy of the dbpaths here.")
@click.option("--auth", is_flag=True, help="keyFile between members and a SCRAM admin user (name and password in "
              "DIR/secrets, named in split.yaml's credentials).")
@click.option("--tls", is_flag=True, help="requireTLS with a self-signed CA and certificate (DIR/secrets/ca.pem).")
def up(lab_dir: Path, base_port: int, docs: int, cache: Path | None, auth: bool, tls: bool) -> None:
    """Start rs1 (node1..node4), wait for PRIMARY on node1, load data, write split.yaml and inventory.yml."""
    the_lab = Lab(lab_dir, base_port, progress=console_bus().progress)
    the_lab.up(docs, cache=cache, auth=auth, tls=tls)
    files = the_lab.security.files
    console.print(f"lab is up in {the_lab.layout.root}")
    console.print(f"  connect:   {the_lab.layout.connection_string}")
    if auth:
        console.print(f"  user:      {files.username()} (password in {files.password_file})")
    if tls:
        console.print(f"  TLS CA:    {files.ca_file}")
    console.print(f"  config:    {the_lab.layout.config_path}")
    console.print(f"  inventory: {the_lab.layout.inventory_path}")
    console.print(f"  next:      splitter plan -c {the_lab.layout.config_path}")


@lab.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def status(lab_dir: Path, as_json: bool) -> None:
    """Every lab process: port, pid, replica-set state."""
    processes = Lab.existing(lab_dir).processes()
    if as_json:
        click.echo(json.dumps([vars(p) for p in processes]))
        return
    table = Table("process", "pid", "port", "mode", "state")
    for p in processes:
        table.add_row(p.name, str(p.pid or "-"), str(p.port or "-"), p.mode, p.state)
    console.print(table)


@lab.command()
@dir_option
@click.option("--purge", is_flag=True, help="Also delete the lab directory (dbpaths, logs, state).")
def down(lab_dir: Path, purge: bool) -> None:
    """Stop every process the lab started, cleanly and by pid. Safe to run twice."""
    if not (lab_dir / "lab.json").exists():
        console.print(f"no lab in {lab_dir}; nothing to stop")
        return
    stopped = Lab.existing(lab_dir, progress=console_bus().progress).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@lab.command("grow")
@dir_option
@click.option("--set", "set_name", default="rs1", show_default=True, help="The set that grows.")
@click.option("--count", default=2, show_default=True, type=click.IntRange(1, 4), help="How many data nodes.")
@click.option("--no-run", is_flag=True, help="Only register the nodes and write grow-SET.yaml; run "
              "`splitter grow run -c DIR/grow-SET.yaml` yourself.")
def grow(lab_dir: Path, set_name: str, count: int, no_run: bool) -> None:
    """Add data nodes to a set of the lab: register them (inventory, lab.json), write grow-SET.yaml, and run the
    grow (the nodes are started by its playbooks; `lab down` stops them by pid)."""
    from splitter.grow.session import open_grow_session, run_grow
    from splitter.lab.growth import write_grow

    grown, path = write_grow(Lab.existing(lab_dir, progress=console_bus().progress), set_name, count)
    console.print(f"registered {', '.join(grown.layout.extra[-count:])}; grow config: {path}")
    if no_run:
        console.print(f"next: splitter grow run -c {path}")
        return
    run_grow(open_grow_session(path, dry_run=False, events=console_bus()))
    console.print(f"{set_name} grew by {', '.join(grown.layout.extra[-count:])}")
