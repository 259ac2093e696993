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
from splitter.routing_document import COLLECTION, DATABASE, DOCUMENT_ID, RoutingDocument

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


def _live(lab: Lab, set_name: str) -> tuple[dict, RoutingDocument | None]:
    """`set_name`'s replica set config and its published routing document, read from a running lab process."""
    for info in lab.processes():
        if not (info.alive and info.state.startswith(f"{set_name}/")):
            continue
        host = f"127.0.0.1:{info.port}"
        try:
            with MongoClient(host, directConnection=True, serverSelectionTimeoutMS=3000,
                             **lab.client_options(system=True)) as client:
                config = client.admin.command("replSetGetConfig")["config"]
                doc = client[DATABASE][COLLECTION].find_one({"_id": DOCUMENT_ID})
        except PyMongoError:
            continue
        return config, (RoutingDocument.from_bson(doc) if doc else None)
    raise BadInput(f"no running lab process belongs to {set_name}", hint="`splitter lab status --dir DIR` shows them")


def set_members(lab: Lab, set_name: str) -> list[str]:
    """host:port of every member of `set_name`, as a running lab process of that set reports it."""
    return [m["host"] for m in _live(lab, set_name)[0]["members"]]


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


def split_config_path(lab: Lab, target: str) -> Path:
    return lab.layout.root / f"split-{target}.yaml"


def write_second_split(lab: Lab, set_name: str = "rs1", target: str = "rs3") -> tuple[Lab, Path]:
    """Split a set an earlier split left (two data nodes + an arbiter) and grew (two more data nodes) again:
    the original data nodes and the arbiter stay, the grown ones become `target` with a new arbiter (registered
    here). The modulus doubles; residue r + m of each residue r the set holds moves to `target`, every other
    owner as published. Writes split-TARGET.yaml (its own state dir); returns the lab and that path."""
    config, published = _live(lab, set_name)
    if published is None or published.state != "final":
        raise BadInput(f"{set_name} has no final routing document: split it (through finalize) before splitting "
                       "it again")
    if target in published.owners.values():
        raise BadInput(f"{target} already owns residues in the published routing")
    by_host = {h.host: h.name for h in lab.layout.hosts}
    data = [by_host[m["host"]] for m in config["members"] if not m.get("arbiterOnly")]
    arbiters = [by_host[m["host"]] for m in config["members"] if m.get("arbiterOnly")]
    if len(data) != 4 or len(arbiters) != 1:
        raise BadInput(f"{set_name} has data members {data} and arbiters {arbiters}; a second split needs four "
                       "data members and one arbiter", hint=f"grow it first: splitter lab grow --set {set_name}")
    # The set's original members stay; the newest hosts (a grow's) move.
    order = [h.name for h in lab.layout.hosts]
    data.sort(key=order.index)
    keep, move = data[:2], data[2:]
    new_arbiter = next_names(lab, "arbiter", 1)[0]
    lab = add_hosts(lab, [new_arbiter])
    modulus = published.modulus * 2
    owners = {r: published.owners[str(r % published.modulus)] for r in range(modulus)}
    owners.update({r: target for r in range(published.modulus, modulus) if owners[r] == set_name})

    def member(name: str) -> dict[str, str]:
        return {"name": name, "host": lab.layout.host(name).host}

    split = yaml.safe_load(lab.layout.config_path.read_text())
    split.update(
        source={"name": set_name, "members": [member(n) for n in data], "keep": keep, "move": move},
        target={"name": target},
        arbiters={role: {**member(n), "dbpath": str(lab.layout.host(n).dbpath)}
                  for role, n in (("source", arbiters[0]), ("target", new_arbiter))},
        routing={**split["routing"], "modulus": modulus, "owners": owners},
        state_dir=f"state-split-{target}",
    )
    path = split_config_path(lab, target)
    path.write_text(f"# Written by `splitter lab split-again` for this lab: {set_name} keeps {', '.join(keep)} and "
                    f"{arbiters[0]}; {', '.join(move)} become {target} with {new_arbiter}.\n"
                    + yaml.safe_dump(split, sort_keys=False))
    return lab, path
