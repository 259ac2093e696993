"""Where every lab process lives (ports, dbpaths, files) and the inventory / split.yaml written for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA_NODES = ("node1", "node2", "node3", "node4")
ARBITERS = ("arbiter1", "arbiter2")
SOURCE_SET = "rs1"
TARGET_SET = "rs2"
DATABASE = "app"
COLLECTIONS = ("users", "events", "sessions")
KEY = "user_id"
MAINTENANCE_OFFSET = 5


@dataclass(frozen=True)
class LabHost:
    name: str
    port: int
    home: Path
    address: str = "127.0.0.1"  # where the orchestrator reaches it (a namespace's address in a netns lab)

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def maintenance_port(self) -> int:
        return self.port + MAINTENANCE_OFFSET

    @property
    def dbpath(self) -> Path:
        return self.home / "db"

    @property
    def conf(self) -> Path:
        return self.home / "mongod.conf"

    @property
    def log(self) -> Path:
        return self.home / "mongod.log"

    @property
    def pidfile(self) -> Path:
        return self.home / "mongod.pid"


@dataclass(frozen=True)
class LabLayout:
    """The lab in DIR: data nodes on base, +10, +20, +30; arbiters on +40, +50 (as in the write-up)."""

    root: Path
    base_port: int = 27017
    extra: tuple[str, ...] = ()  # hosts added later (`lab grow`), on +60, +70, ... in this order

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        names = DATA_NODES + ARBITERS + self.extra
        return tuple(LabHost(n, self.base_port + 10 * i, self.root / n) for i, n in enumerate(names))

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    @property
    def data_nodes(self) -> tuple[LabHost, ...]:
        return tuple(h for h in self.hosts if h.name in DATA_NODES)

    @property
    def inventory_path(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def config_path(self) -> Path:
        return self.root / "split.yaml"

    @property
    def meta_path(self) -> Path:
        return self.root / "lab.json"

    @property
    def connection_string(self) -> str:
        seeds = ",".join(h.host for h in self.data_nodes)
        return f"mongodb://{seeds}/?replicaSet={SOURCE_SET}"

    @staticmethod
    def inventory_entry(h: LabHost) -> dict[str, Any]:
        return {
            "ansible_host": "127.0.0.1",
            "mongod_port": h.port,
            "mongod_maintenance_port": h.maintenance_port,
            "mongod_dbpath": str(h.dbpath),
            "mongod_conf": str(h.conf),
            "mongod_log": str(h.log),
            "mongod_pidfile": str(h.pidfile),
        }

    def inventory(self, mongod_bin: Path, extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        hosts = {h.name: self.inventory_entry(h) for h in self.hosts}
        common = {
            "splitter_lab": True,  # `run --yes` confirms the cutover by itself only on a lab inventory
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "mongod_manager": "process",
            "mongod_bin": str(mongod_bin),
            "mongod_cache_gb": 0.25,
            "mongod_oplog_mb": 512,
            # Lab only: 300 MB of preallocated journal per node filled CI's disk over a test run.
            "mongod_wiredtiger_config": "log=(file_max=16MB,prealloc=false)",
            # enableTestCommands: failpoints (e.g. stopReplProducer) for the tests of the split optime's anchoring.
            "mongod_set_parameters": {"diagnosticDataCollectionEnabled": False, "enableTestCommands": 1},
            **(extra_vars or {}),
        }
        return {"all": {"vars": common, "children": {
            "data_nodes": {"hosts": {n: hosts[n] for n in DATA_NODES}},
            "arbiters": {"hosts": {n: hosts[n] for n in ARBITERS}},
        }}}

    def split_config(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        def member(name: str) -> dict[str, str]:
            return {"name": name, "host": self.host(name).host}

        return {
            "source": {"name": SOURCE_SET, "members": [member(n) for n in DATA_NODES],
                       "keep": ["node1", "node2"], "move": ["node3", "node4"]},
            "target": {"name": TARGET_SET},
            "arbiters": {
                "source": {**member("arbiter1"), "dbpath": str(self.host("arbiter1").dbpath)},
                "target": {**member("arbiter2"), "dbpath": str(self.host("arbiter2").dbpath)},
            },
            "inventory": "inventory.yml",
            "routing": {"modulus": 2, "owners": {0: SOURCE_SET, 1: TARGET_SET},
                        "default_key": KEY, "databases": {DATABASE: KEY}},
            "gates": {"quiet_period": "2s"},
            "state_dir": "state",
            "planning": {"expected_duration": "30m"},
            **(extra or {}),
        }

    def write_files(self, mongod_bin: Path, inventory_vars: dict[str, Any] | None = None,
                    config_extra: dict[str, Any] | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.inventory_path.write_text(yaml.safe_dump(self.inventory(mongod_bin, inventory_vars), sort_keys=False))
        self.config_path.write_text(
            "# Written by `splitter lab up` for this lab. Nodes 1+2 keep rs1 (user_id % 2 == 0),\n"
            "# nodes 3+4 become rs2 (user_id % 2 == 1).\n"
            + yaml.safe_dump(self.split_config(config_extra), sort_keys=False))
