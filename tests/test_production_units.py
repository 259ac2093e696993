"""Production path without mongod: the node's config kept key by key, Ansible's inventory loader with
group_vars/host_vars and Jinja, the playbooks found from the package, the schedule only where it is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from splitter.cleanup.schedule import refuse_remote
from splitter.errors import BadInput
from splitter.hosts.ansible_adapter import PLAYBOOK_DIR
from splitter.hosts.node_config import derive, disagreements, flatten, key_diff, process_manager_problems
from splitter.inventory import InventoryHost, load_inventory
from splitter.lab.layout import LabLayout

NODE_FILE = {
    "storage": {"dbPath": "/var/lib/mongodb", "directoryPerDB": True, "wiredTiger": {"engineConfig": {
        "directoryForIndexes": True}}, "engine": "wiredTiger"},
    "net": {"port": 27017, "bindIp": "10.0.0.3", "maxIncomingConnections": 5000,
            "tls": {"mode": "requireTLS", "certificateKeyFile": "/etc/ssl/node3.pem", "CAFile": "/etc/ssl/ca.pem"}},
    "security": {"clusterAuthMode": "x509", "enableEncryption": True, "encryptionKeyFile": "/etc/mongodb/ek"},
    "auditLog": {"destination": "file", "format": "JSON", "path": "/var/log/mongodb/audit.json"},
    "operationProfiling": {"mode": "slowOp", "slowOpThresholdMs": 250},
    "replication": {"replSetName": "rs1", "oplogSizeMB": 51200},
    "setParameter": {"ttlMonitorSleepSecs": 120},
}
INV = InventoryHost("node3", {"mongod_port": 27017, "mongod_maintenance_port": 27022,
                              "mongod_maintenance_bind_ip": "10.0.0.3", "mongod_conf": "/etc/mongod.conf"})


def _changed(before: dict, after: dict) -> set[str]:
    return {line[2:].split(":", 1)[0] for line in key_diff(before, after)}


def test_standalone_changes_only_its_keys_and_keeps_access_control() -> None:
    conf = derive(NODE_FILE, "standalone", INV)
    assert _changed(NODE_FILE, conf) == {"net.port", "replication.replSetName",
                                         "setParameter.disableLogicalSessionCacheRefresh",
                                         "setParameter.ttlMonitorEnabled",
                                         "security.authorization"}
    assert conf["security"]["authorization"] == "enabled"  # x509 membership implied it in the replica set
    assert conf["net"]["tls"] == NODE_FILE["net"]["tls"] and conf["auditLog"] == NODE_FILE["auditLog"]
    assert conf["replication"] == {"oplogSizeMB": 51200}


def test_rs2_and_rollback_phases() -> None:
    rs2 = derive(NODE_FILE, "replset", INV, "rs2")
    assert key_diff(NODE_FILE, rs2) == ["~ replication.replSetName: rs1 -> rs2"]
    assert derive(NODE_FILE, "original", INV) == NODE_FILE


def test_explicit_authorization_is_never_overridden() -> None:
    node = {**NODE_FILE, "security": {"keyFile": "/k", "authorization": "disabled"}}
    assert derive(node, "standalone", INV)["security"] == {"keyFile": "/k", "authorization": "disabled"}


def test_running_options_cross_check() -> None:
    running = {**NODE_FILE, "config": "/etc/mongod.conf", "setParameter": {"ttlMonitorSleepSecs": "120"}}
    assert disagreements(NODE_FILE, running) == []  # setParameter values come back as strings
    started_by_hand = {**running, "net": {**NODE_FILE["net"], "maxIncomingConnections": 100}}
    started_by_hand["setParameter"] = {"ttlMonitorSleepSecs": "120", "notablescan": "true"}
    problems = disagreements(NODE_FILE, started_by_hand)
    assert len(problems) == 2
    assert "net.maxIncomingConnections=100, its file says 5000" in problems[0]
    assert "setParameter.notablescan=true that its file does not hold" in problems[1]


def test_a_process_managed_node_must_fork_and_write_the_inventorys_pid_file() -> None:
    managed = InventoryHost("node3", {**INV.vars, "mongod_manager": "process", "mongod_pidfile": "/run/m.pid"})
    forking = {**NODE_FILE, "processManagement": {"fork": True, "pidFilePath": "/run/m.pid"}}
    assert process_manager_problems(forking, managed) == []
    assert process_manager_problems(NODE_FILE, InventoryHost("node3", {**INV.vars, "mongod_manager": "systemd"})) == []
    foreground = {**NODE_FILE, "processManagement": {"pidFilePath": "/var/run/mongod.pid"}}
    assert process_manager_problems(foreground, managed) == [
        "processManagement.fork is not true (a start would wait for mongod to exit)",
        "processManagement.pidFilePath is /var/run/mongod.pid, the inventory's mongod_pidfile is /run/m.pid "
        "(a stop could not find the process)"]


def test_flatten_keeps_lists_as_values() -> None:
    assert flatten({"a": {"b": [1, 2], "c": {}}}) == {"a.b": [1, 2], "a.c": {}}


def split_inventory(where: Path, layout_inventory: dict) -> Path:
    """The lab's YAML inventory as an operator would lay it out in where/inv: INI hosts, group_vars/,
    host_vars/, Jinja (mongod_connect_host from ansible_host, the maintenance port from mongod_port)."""
    root = where / "inv"
    (root / "group_vars").mkdir(parents=True)
    (root / "host_vars").mkdir()
    common = dict(layout_inventory["all"]["vars"])
    common["mongod_connect_host"] = "{{ ansible_host }}"
    common["mongod_maintenance_port"] = "{{ mongod_port | int + 5 }}"
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump(common))
    lines = []
    for group, body in layout_inventory["all"]["children"].items():
        lines.append(f"[{group}]")
        for name, host_vars in body["hosts"].items():
            lines.append(name)
            own = {k: v for k, v in host_vars.items() if k not in ("mongod_maintenance_port",)}
            (root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(own))
        lines.append("")
    (root / "hosts.ini").write_text("\n".join(lines))
    return root / "hosts.ini"


def test_group_vars_host_vars_and_jinja_load_like_the_yaml_inventory(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path / "lab", 34000)
    data = layout.inventory(Path("/usr/bin/mongod"))
    (tmp_path / "flat.yml").write_text(yaml.safe_dump(data))
    flat = load_inventory(tmp_path / "flat.yml")
    split = load_inventory(split_inventory(tmp_path, data))
    assert set(split) == set(flat)
    for name, host in flat.items():
        assert split[name].port == host.port and split[name].maintenance_port == host.maintenance_port
        assert split[name].connect_host == "127.0.0.1"  # rendered from {{ ansible_host }}
        assert split[name].vars["mongod_dbpath"] == host.vars["mongod_dbpath"]
        assert split[name].is_lab


def test_a_jinja_value_that_cannot_render_is_bad_input(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path / "lab", 34000)
    data = layout.inventory(Path("/usr/bin/mongod"))
    data["all"]["vars"]["mongod_connect_host"] = "{{ no_such_variable }}"
    (tmp_path / "inv.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(BadInput, match="cannot render mongod_connect_host"):
        load_inventory(tmp_path / "inv.yml")


def test_playbooks_found_and_templates_beside_them() -> None:
    assert (PLAYBOOK_DIR / "mongod_start.yml").is_file()
    assert (PLAYBOOK_DIR / "templates" / "mongod.conf.j2").is_file()


def test_schedule_is_installed_only_where_splitter_runs(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path / "lab", 34000)
    data = layout.inventory(Path("/usr/bin/mongod"))
    data["all"]["children"]["data_nodes"]["hosts"]["node3"]["ansible_connection"] = "ssh"
    (tmp_path / "inv.yml").write_text(yaml.safe_dump(data))
    refuse_remote(tmp_path / "inv.yml", "localhost")
    refuse_remote(tmp_path / "inv.yml", "node1")  # ansible_connection: local
    with pytest.raises(BadInput, match="node3 is not this machine"):
        refuse_remote(tmp_path / "inv.yml", "node3")
