"""`splitter lab grow`: register more hosts in a lab (inventory, lab.json) and write grow.yaml for a set.

The hosts are started by `splitter grow` through the playbooks, with their pidfiles in the lab directory, so
`lab down` stops them by pid like every other lab process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.errors import BadInput
from splitter.lab.lab import Lab
from splitter.lab.layout import LabLayout

MAX_EXTRA = 4  # +60..+95: a lab stays inside its 100 ports


def add_hosts(lab: Lab, names: list[str]) -> Lab:
    """Register `names` (ports +60, +70, ... in order) in lab.json and the inventory; returns the lab re-read."""
    layout = lab.layout
    taken = [h.name for h in layout.hosts]
    if clash := [n for n in names if n in taken]:
        raise BadInput(f"the lab already has {', '.join(clash)}")
    if len(layout.extra) + len(names) > MAX_EXTRA:
        raise BadInput(f"a lab holds at most {MAX_EXTRA} added hosts (it has {', '.join(layout.extra) or 'none'})")
    grown = LabLayout(layout.root, layout.base_port, (*layout.extra, *names))
    inventory = yaml.safe_load(grown.inventory_path.read_text())
    for name in names:
        group = "arbiters" if name.startswith("arbiter") else "data_nodes"
        inventory["all"]["children"][group]["hosts"][name] = grown.inventory_entry(grown.host(name))
    grown.inventory_path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    meta = json.loads(grown.meta_path.read_text())
    grown.meta_path.write_text(json.dumps({**meta, "extra_hosts": list(grown.extra)}))
    return Lab.existing(grown.root, lab.progress)


def next_names(lab: Lab, prefix: str, count: int) -> list[str]:
    numbers = [int(m.group(1)) for h in lab.layout.hosts if (m := re.fullmatch(rf"{prefix}(\d+)", h.name))]
    start = max(numbers, default=0) + 1
    return [f"{prefix}{start + i}" for i in range(count)]


def set_members(lab: Lab, set_name: str) -> list[str]:
    """host:port of every member of `set_name`, as a running lab process of that set reports it."""
    for info in lab.processes():
        if not (info.alive and info.state.startswith(f"{set_name}/")):
            continue
        host = f"127.0.0.1:{info.port}"
        try:
            with MongoClient(host, directConnection=True, serverSelectionTimeoutMS=3000,
                             **lab.client_options(system=True)) as client:
                config = client.admin.command("replSetGetConfig")["config"]
        except PyMongoError:
            continue
        return [m["host"] for m in config["members"]]
    raise BadInput(f"no running lab process belongs to {set_name}", hint="`splitter lab status --dir DIR` shows them")


def grow_config_path(lab: Lab, set_name: str) -> Path:
    return lab.layout.root / f"grow-{set_name}.yaml"


def write_grow(lab: Lab, set_name: str, count: int = 2) -> tuple[Lab, Path]:
    """Register `count` new data nodes for `set_name` and write grow-SET.yaml; returns the lab and that path."""
    members = set_members(lab, set_name)
    names = next_names(lab, "node", count)
    lab = add_hosts(lab, names)
    by_host = {h.host: h.name for h in lab.layout.hosts}
    split = yaml.safe_load(lab.layout.config_path.read_text())
    config = {
        "set": {"name": set_name, "members": [{"name": by_host[h], "host": h} for h in members]},
        "new_members": [{"name": n, "host": lab.layout.host(n).host, "dbpath": str(lab.layout.host(n).dbpath)}
                        for n in names],
        "inventory": "inventory.yml",
        "state_dir": f"state-grow-{set_name}",
        "planning": {"expected_initial_sync": "10m"},
        **({"credentials": split["credentials"]} if "credentials" in split else {}),
    }
    path = grow_config_path(lab, set_name)
    path.write_text(f"# Written by `splitter lab grow` for this lab: {set_name} grows by {', '.join(names)}.\n"
                    + yaml.safe_dump(config, sort_keys=False))
    return lab, path
