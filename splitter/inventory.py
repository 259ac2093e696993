"""Reads the Ansible YAML inventory to learn how each host's mongod is managed (ports, dbpaths, manager)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from splitter.errors import BadInput

MANAGERS = ("process", "systemd", "docker")
REQUIRED = ("mongod_manager", "mongod_port", "mongod_dbpath", "mongod_conf", "mongod_log")
REQUIRED_BY_MANAGER = {"process": ("mongod_bin", "mongod_pidfile"), "systemd": ("mongod_service",),
                       "docker": ("compose_file", "compose_service")}


@dataclass(frozen=True)
class InventoryHost:
    """One host's mongod as the playbooks see it."""

    name: str
    vars: Mapping[str, Any]

    @property
    def port(self) -> int:
        return int(self.vars["mongod_port"])

    @property
    def maintenance_port(self) -> int:
        return int(self.vars.get("mongod_maintenance_port", self.port + 1000))

    @property
    def connect_host(self) -> str:
        return str(self.vars.get("mongod_connect_host", self.vars.get("ansible_host", "127.0.0.1")))

    @property
    def manager(self) -> str:
        return str(self.vars["mongod_manager"])


def _collect(group: Mapping[str, Any], inherited: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    merged = {**inherited, **(group.get("vars") or {})}
    for name, host_vars in (group.get("hosts") or {}).items():
        out[name] = {**out.get(name, {}), **merged, **(host_vars or {})}
    for child in (group.get("children") or {}).values():
        _collect(child or {}, merged, out)


def load_inventory(path: Path) -> dict[str, InventoryHost]:
    """Parse and check the inventory; any problem is BadInput naming the file, host and variable."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise BadInput(f"cannot read inventory {path}: {exc.strerror}",
                       hint="set `inventory:` in split.yaml to the inventory file") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: inventory is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise BadInput(f"{path}: inventory must be YAML with a top-level `all:` group")
    hosts: dict[str, dict[str, Any]] = {}
    _collect(data["all"], {}, hosts)
    result: dict[str, InventoryHost] = {}
    for name, host_vars in hosts.items():
        missing = [v for v in REQUIRED if v not in host_vars]
        manager = host_vars.get("mongod_manager")
        if manager is not None and manager not in MANAGERS:
            raise BadInput(f"{path}: host {name}: mongod_manager is {manager!r}; use one of {', '.join(MANAGERS)}")
        missing += [v for v in REQUIRED_BY_MANAGER.get(str(manager), ()) if v not in host_vars]
        if missing:
            raise BadInput(f"{path}: host {name} lacks {', '.join(missing)}")
        try:
            int(host_vars["mongod_port"])
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{path}: host {name}: mongod_port {host_vars['mongod_port']!r} is not a number") from exc
        result[name] = InventoryHost(name, host_vars)
    return result
