"""Reads the operator's Ansible inventory with Ansible's own loader to learn how each host's mongod is managed.

INI or YAML, a directory of sources, `group_vars/` and `host_vars/` beside it, variable precedence and Jinja in
values (`mongod_connect_host: "{{ ansible_host }}"`) all work as they do for `ansible-playbook`, because the
InventoryManager, VariableManager and Templar of ansible-core do the work.
"""

from __future__ import annotations

import contextlib
import io
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
# Magic variables Ansible adds to every host; splitter renders and keeps only the inventory's own variables.
# Variables splitter reads; any other variable that does not render (e.g. one that needs a play, like
# `ansible_playbook_python`) is kept as written, for Ansible to render when it runs a playbook.
USED_PREFIXES = ("mongod_", "compose_", "splitter_", "cleanup_")
MAGIC = {"groups", "group_names", "inventory_hostname", "inventory_hostname_short", "playbook_dir", "omit",
         "ansible_playbook_python", "ansible_config_file", "ansible_version"}


@dataclass(frozen=True)
class InventoryHost:
    """One host's mongod as the playbooks see it (variables rendered as Ansible renders them)."""

    name: str
    vars: Mapping[str, Any]

    @property
    def port(self) -> int:
        return int(self.vars["mongod_port"])

    @property
    def maintenance_port(self) -> int:
        return int(self.vars.get("mongod_maintenance_port", self.port + 1000))

    @property
    def maintenance_bind_ip(self) -> str:
        return str(self.vars.get("mongod_maintenance_bind_ip", "127.0.0.1"))

    @property
    def connect_host(self) -> str:
        return str(self.vars.get("mongod_connect_host", self.vars.get("ansible_host", "127.0.0.1")))

    @property
    def manager(self) -> str:
        return str(self.vars["mongod_manager"])

    @property
    def is_lab(self) -> bool:
        return bool(self.vars.get("splitter_lab", False))


def plain(value: Any) -> Any:
    """Ansible's tagged str/int/dict/list values as plain Python (they compare and dump like the plain ones)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _yaml_syntax(path: Path) -> None:
    """A YAML file that is not YAML gets the parser's own message (Ansible would only say it found no hosts)."""
    if path.is_file() and path.suffix in (".yml", ".yaml"):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise BadInput(f"{path}: inventory is not valid YAML: {exc}") from exc


def _load(path: Path) -> tuple[Any, Any, Any]:
    """InventoryManager + VariableManager over one source; a source Ansible cannot parse is BadInput."""
    _yaml_syntax(path)
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    # Ansible reports an unparsable source as a warning on stderr and goes on with an empty inventory.
    with contextlib.redirect_stderr(io.StringIO()) as noise, contextlib.redirect_stdout(io.StringIO()):
        inventory = InventoryManager(loader=loader, sources=[str(path)])
    hosts = inventory.get_hosts()
    if not hosts:
        detail = " ".join(noise.getvalue().split())[-300:]
        shape = " (a YAML inventory has a top-level `all:` group with hosts or children)" if path.suffix in (
            ".yml", ".yaml") else ""
        raise BadInput(f"{path}: Ansible finds no hosts in this inventory{shape}" + (f": {detail}" if detail else ""),
                       hint="check it with `ansible-inventory -i PATH --list`")
    return loader, inventory, VariableManager(loader=loader, inventory=inventory)


def _render_host(name: str, raw: Mapping[str, Any], loader: Any, path: Path) -> dict[str, Any]:
    from ansible.errors import AnsibleError
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=dict(raw))
    rendered: dict[str, Any] = {}
    for key, value in raw.items():
        if key in MAGIC or key == "hostvars":
            continue
        try:
            rendered[key] = plain(templar.template(value))
        except AnsibleError as exc:
            if not key.startswith(USED_PREFIXES):
                rendered[key] = plain(value)
                continue
            message = str(exc).splitlines()[0]
            raise BadInput(f"{path}: host {name}: cannot render {key}: {message}",
                           hint=f"define what {key} refers to for {name} (host_vars/, group_vars/ or the host)"
                           ) from exc
    return rendered


def _check(path: Path, name: str, host_vars: Mapping[str, Any]) -> None:
    missing = [v for v in REQUIRED if v not in host_vars]
    manager = host_vars.get("mongod_manager")
    if manager is not None and manager not in MANAGERS:
        raise BadInput(f"{path}: host {name}: mongod_manager is {manager!r}; use one of {', '.join(MANAGERS)}")
    missing += [v for v in REQUIRED_BY_MANAGER.get(str(manager), ()) if v not in host_vars]
    if missing:
        raise BadInput(f"{path}: host {name} lacks {', '.join(missing)}",
                       hint="set it for the host, its group, or in group_vars/ or host_vars/ beside the inventory")
    for key in ("mongod_port", "mongod_maintenance_port"):
        if key in host_vars:
            try:
                int(host_vars[key])
            except (TypeError, ValueError) as exc:
                raise BadInput(f"{path}: host {name}: {key} {host_vars[key]!r} is not a number") from exc


def load_inventory(path: Path, *, check: bool = True) -> dict[str, InventoryHost]:
    """Parse, render and check the inventory; any problem is BadInput naming the file, host and variable.
    `check=False` skips the mongod variables (for a host that only runs splitter, e.g. the schedule's)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"cannot read inventory {path}: no such file or directory",
                       hint="set `inventory:` in split.yaml to the inventory file")
    loader, inventory, variables = _load(path)
    result: dict[str, InventoryHost] = {}
    for host in inventory.get_hosts():
        raw = variables.get_vars(host=host, include_hostvars=False)
        host_vars = _render_host(host.name, raw, loader, path)
        if check:
            _check(path, host.name, host_vars)
        result[host.name] = InventoryHost(host.name, host_vars)
    return result
