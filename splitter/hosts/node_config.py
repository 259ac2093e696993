"""The node's own mongod.conf, kept: each phase of the split changes only the keys it must.

Read: the node's file through the read-only playbook mongod_conf_read.yml (the copy `<mongod_conf>.splitter-orig`
that mongod_start.yml keeps on the host at its first write, else the file itself). Derive: `standalone` changes
replication.replSetName (removed), net.port / net.bindIp (the maintenance address) and adds
setParameter.disableLogicalSessionCacheRefresh and ttlMonitorEnabled: false (plus security.authorization
where a keyFile or x509 membership implied it); `replset` sets replication.replSetName; `original` is the file
as it was (rollback). Everything else (security, TLS, storage layout, encryption, audit, profiling,
setParameter) is kept as written.
Cross-check: the running mongod's getCmdLineOpts against the file, so a node started with options its file
does not hold is refused before anything is touched.

Touches: nothing itself; the steps hand the derived text to mongod_start.yml (`mongod_conf_contents`).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from splitter.errors import BadInput, HostActionFailed, OperationalError
from splitter.inventory import InventoryHost

READ_PLAYBOOK = "mongod_conf_read.yml"
ORIGINAL_SUFFIX = ".splitter-orig"
PHASES = ("standalone", "replset", "original")
ABSENT = "(absent)"
X509_MODES = ("x509", "sendX509", "sendKeyFile")
ABSENT_KEY = object()  # a key one side of a comparison does not have


def read_configs(adapter: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """host -> the node's own config (parsed). Read-only, so it runs in `plan` too."""
    return {name: doc for name, (doc, _text) in read_files(adapter, names).items()}


# What a read returns is always the node's own file (the kept copy once a phase wrote the file), so one read per
# host and command is enough: plan and run read it for preflight, the plan lines and each start.
_READ: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}


def read_files(adapter: Any, names: Sequence[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """host -> (parsed, text) of the node's own config file."""
    where = str(getattr(adapter, "inventory", ""))
    missing = [n for n in names if (where, n) not in _READ]
    if missing:
        _READ.update({(where, n): parsed for n, parsed in _read_files(adapter, missing).items()})
    return {n: _READ[(where, n)] for n in names}


def _read_files(adapter: Any, names: Sequence[str]) -> dict[str, tuple[dict[str, Any], str]]:
    result = adapter.run(READ_PLAYBOOK, list(names))
    configs: dict[str, tuple[dict[str, Any], str]] = {}
    for name in names:
        res = result.outputs.get(name, {}).get("Report the node's own config file", {})
        if "content" not in res:
            raise HostActionFailed(f"{READ_PLAYBOOK} returned no config file for {name}")
        text = base64.b64decode(res["content"]).decode()
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise BadInput(f"{name}: {res.get('source', 'mongod.conf')} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise BadInput(f"{name}: {res.get('source', 'mongod.conf')} is not a YAML mapping of mongod options")
        configs[name] = (doc, text)
    return configs


def derive(original: Mapping[str, Any], phase: str, inv: InventoryHost, replset_name: str | None = None
           ) -> dict[str, Any]:
    """The config of `phase`, from the node's own file: only the keys that phase needs change."""
    conf = copy.deepcopy(dict(original))
    if phase == "original":
        return conf
    if phase == "replset":
        if not replset_name:
            raise ValueError("replset phase needs a replica-set name")
        conf["replication"] = {**(conf.get("replication") or {}), "replSetName": replset_name}
        return conf
    if phase != "standalone":
        raise ValueError(f"unknown phase {phase!r}")
    replication = {k: v for k, v in (conf.get("replication") or {}).items() if k != "replSetName"}
    conf.pop("replication", None)
    if replication:
        conf["replication"] = replication
    net = {k: v for k, v in (conf.get("net") or {}).items() if k != "bindIpAll"}
    conf["net"] = {**net, "port": inv.maintenance_port, "bindIp": inv.maintenance_bind_ip}
    # No TTL deletes while standalone: rs1 never made them, so they would be entries rs2 has and rs1 lacks.
    conf["setParameter"] = {**(conf.get("setParameter") or {}), "disableLogicalSessionCacheRefresh": True,
                            "ttlMonitorEnabled": False}
    security = dict(conf.get("security") or {})
    # In a replica set, keyFile / x509 membership turn on access control; standalone they do not, so say it.
    if (security.get("keyFile") or security.get("clusterAuthMode") in X509_MODES) and "authorization" not in security:
        conf["security"] = {**security, "authorization": "enabled"}
    return conf


def render(conf: Mapping[str, Any], phase: str, name: str, conf_path: str) -> str:
    header = (f"# Written by splitter for {name} ({phase} phase of the split) from this node's own file,\n"
              f"# which is kept unchanged at {conf_path}{ORIGINAL_SUFFIX}. Only the keys the phase needs differ.\n")
    return header + yaml.safe_dump(dict(conf), sort_keys=False, default_flow_style=False)


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"net": {"port": 1}} -> {"net.port": 1}; lists are leaves."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _show(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(key, old value, new value) per key whose values differ, in key order; ABSENT_KEY on the side without it."""
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, ABSENT_KEY), new.get(key, ABSENT_KEY)
        if before != after:
            yield key, before, after


def key_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One line per changed key: `~ key: old -> new`, `- key: old`, `+ key: new` (dotted paths)."""
    lines = []
    for key, old, new in _differences(flatten(before), flatten(after)):
        if new is ABSENT_KEY:
            lines.append(f"- {key}: {_show(old)}")
        elif old is ABSENT_KEY:
            lines.append(f"+ {key}: {_show(new)}")
        else:
            lines.append(f"~ {key}: {_show(old)} -> {_show(new)}")
    return lines


def _norm(value: Any) -> str:
    """getCmdLineOpts gives setParameter values as strings and numbers as the server parsed them."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{float(value):.12g}"
    if isinstance(value, str):
        try:
            return f"{float(value):.12g}"
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, default=str)


def disagreements(file_doc: Mapping[str, Any], running: Mapping[str, Any]) -> list[str]:
    """Where the running options (getCmdLineOpts `parsed`) and the node's file differ; empty when they agree."""
    on_file = {k: _norm(v) for k, v in flatten(file_doc).items()}
    live = {k: _norm(v) for k, v in flatten(running).items() if k != "config"}
    problems = []
    for key, filed, runs in _differences(on_file, live):
        if filed is ABSENT_KEY:
            problems.append(f"runs with {key}={runs} that its file does not hold (a restart would drop it)")
        elif runs is ABSENT_KEY:
            problems.append(f"its file has {key}={filed} that the running mongod does not use")
        else:
            problems.append(f"runs with {key}={runs}, its file says {filed}")
    return problems


def process_manager_problems(file_doc: Mapping[str, Any], inv: InventoryHost) -> list[str]:
    """What keeps mongod_start.yml / mongod_stop.yml from managing this node as a process (`mongod_manager:
    process`): the start runs `mongod --config FILE` and waits for it, so the file must fork; the stop and the
    "is it running" check find the process by the inventory's mongod_pidfile, so the file must write that one."""
    if inv.vars.get("mongod_manager") != "process":
        return []
    management = file_doc.get("processManagement") or {}
    problems = []
    if management.get("fork") is not True:
        problems.append("processManagement.fork is not true (a start would wait for mongod to exit)")
    pidfile = str(inv.vars.get("mongod_pidfile", ""))
    if management.get("pidFilePath") != pidfile:
        problems.append(f"processManagement.pidFilePath is {management.get('pidFilePath', ABSENT)}, the inventory's "
                        f"mongod_pidfile is {pidfile or ABSENT} (a stop could not find the process)")
    return problems


def start_vars(adapter: Any, inventory: Mapping[str, InventoryHost], names: Sequence[str], phase: str,
               replset_name: str | None = None) -> dict[str, Any]:
    """mongod_start.yml's extravars for `names` in `phase`: each node's own file with only that phase's changes.
    `original` (rollback) writes the node's file back byte for byte and drops the kept copy."""
    files = read_files(adapter, names)
    if phase == "original":
        contents = {n: files[n][1] for n in names}
    else:
        contents = {n: render(derive(files[n][0], phase, inventory[n], replset_name), phase, n,
                              str(inventory[n].vars["mongod_conf"])) for n in names}
    mode = "standalone" if phase == "standalone" else "replset"
    extravars: dict[str, Any] = {"mongod_mode": mode, "mongod_conf_contents": contents,
                                 "mongod_conf_drop_original": phase == "original"}
    if mode == "replset":
        extravars["replset_name"] = replset_name or ""
    return extravars


def plan_lines(adapter: Any, inventory: Mapping[str, InventoryHost], names: Sequence[str], phase: str,
               replset_name: str | None = None) -> list[str]:
    """For `plan`: per node, the file it will write and exactly the keys that change."""
    try:
        originals = read_configs(adapter, names)
    except OperationalError as exc:  # plan still shows the other steps; the step itself reads again
        return [f"config diff: cannot read the config files of {', '.join(names)} now ({exc.message})"]
    lines = []
    for name in names:
        changes = key_diff(originals[name], derive(originals[name], phase, inventory[name], replset_name))
        lines.append(f"config diff {name} {inventory[name].vars['mongod_conf']} ({phase}): "
                     + ("; ".join(changes) if changes else "no change"))
    return lines
