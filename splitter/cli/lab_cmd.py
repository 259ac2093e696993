"""`splitter lab up|status|down`: a local lab of real mongod processes."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from splitter.cli.output import console_bus
from splitter.lab.lab import Lab
from splitter.lab.netns import NetnsLab, open_lab

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
@click.option("--network", type=click.Choice(["local", "netns"]), default="local", show_default=True,
              help="local: every mongod on this host's loopback. netns: six hosts, each a network namespace on a "
                   "private bridge with sshd and mongod on 27017, reached over SSH (needs root and sshd).")
def up(lab_dir: Path, base_port: int, docs: int, cache: Path | None, auth: bool, tls: bool, network: str) -> None:
    """Start rs1 (node1..node4), wait for PRIMARY on node1, load data, write split.yaml and inventory.yml."""
    lab_class = NetnsLab if network == "netns" else Lab
    the_lab = lab_class(lab_dir, base_port, progress=console_bus().progress)
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
    """Every lab process: port, pid, replica-set state (netns lab: each host, its address and processes)."""
    the_lab = open_lab(lab_dir)
    if isinstance(the_lab, NetnsLab):
        from splitter.lab.netns_faults import Faults

        rows = the_lab.host_rows(Faults(the_lab).describe())
        if as_json:
            click.echo(json.dumps(rows))
            return
        table = Table("host", "address", "namespace", "mongod pid", "state", "sshd pid", "fault")
        for r in rows:
            table.add_row(r["host"], r["address"], r["namespace"], str(r["mongod_pid"] or "-"), r["state"],
                          str(r["sshd_pid"] or "-"), r["fault"])
        console.print(table)
        return
    processes = the_lab.processes()
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
    if not (lab_dir / "lab.json").exists() and not (lab_dir / "netns.json").exists():
        console.print(f"no lab in {lab_dir}; nothing to stop")
        return
    stopped = open_lab(lab_dir, progress=console_bus().progress).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


def _faults(lab_dir: Path):
    from splitter.lab.netns_faults import Faults

    the_lab = open_lab(lab_dir)
    if not isinstance(the_lab, NetnsLab):
        raise click.BadParameter("faults need a netns lab (splitter lab up --network netns)")
    return Faults(the_lab)


@lab.command()
@dir_option
@click.argument("host")
@click.option("--from", "peers", multiple=True, help="Cut only from this host (or `orchestrator`); repeatable. "
              "Default: from every other host and the orchestrator.")
def partition(lab_dir: Path, host: str, peers: tuple[str, ...]) -> None:
    """netns lab: drop all traffic between HOST and its peers, silently, both ways."""
    _faults(lab_dir).partition(host, list(peers) or None)
    console.print(f"{host} partitioned from {', '.join(peers) or 'everyone'}")


@lab.command()
@dir_option
@click.argument("host", required=False)
def heal(lab_dir: Path, host: str | None) -> None:
    """netns lab: remove HOST's partitions (all partitions without HOST)."""
    _faults(lab_dir).heal(host)
    console.print(f"healed {host or 'every partition'}")


@lab.command()
@dir_option
@click.argument("host")
@click.option("--restore", is_flag=True, help="Boot the lost host again (sshd, mongod with its last config).")
def lose(lab_dir: Path, host: str, restore: bool) -> None:
    """netns lab: kill every process in HOST's namespace, as if the machine died."""
    faults = _faults(lab_dir)
    if restore:
        faults.restore(host)
        console.print(f"{host} is back")
        return
    console.print(f"{host} lost (killed pids {', '.join(map(str, faults.lose(host))) or 'none'})")


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


@lab.command("split-again")
@dir_option
@click.option("--set", "set_name", default="rs1", show_default=True, help="The grown set to split again.")
@click.option("--target", default="rs3", show_default=True, help="The new set's name.")
def split_again(lab_dir: Path, set_name: str, target: str) -> None:
    """Write DIR/split-TARGET.yaml: a second split of a set an earlier split left and `lab grow` grew (its
    original nodes and arbiter stay, the grown nodes become TARGET with a new arbiter, the modulus doubles)."""
    from splitter.lab.growth import write_second_split

    _lab, path = write_second_split(Lab.existing(lab_dir, progress=console_bus().progress), set_name, target)
    console.print(f"second split config: {path}")
    console.print(f"next: splitter run -c {path}")
