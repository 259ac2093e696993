"""`splitter lab up|status|down`: real mongod processes in DIR, started and stopped by the playbooks."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from splitter.cluster.shutdown import request_shutdown
from splitter.errors import BadInput, OperationalError
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.lab.dataload import load_documents
from splitter.lab.layout import DATA_NODES, SOURCE_SET, LabHost, LabLayout
from splitter.lab.processes import mongod_alive, port_in_use, read_pid, terminate
from splitter.mongod_binary import find_mongod

LAB_SETTINGS = {"electionTimeoutMillis": 3000, "heartbeatIntervalMillis": 1000}
SNAPSHOT_FORMAT = 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProcessInfo:
    name: str
    pid: int | None
    alive: bool
    port: int | None
    mode: str
    state: str


def _quiet(_: str) -> None:
    return None


def _wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except PyMongoError:
            pass
        time.sleep(interval)
    raise OperationalError(f"lab: timed out after {timeout:.0f}s waiting for {what}")


class Lab:
    """One lab directory. All starts and stops go through the mongod_start / mongod_stop playbooks."""

    def __init__(self, root: Path, base_port: int = 27017, progress: Progress = _quiet) -> None:
        self.layout = LabLayout(Path(root).resolve(), base_port)
        self.progress = progress

    @classmethod
    def existing(cls, root: Path, progress: Progress = _quiet) -> Lab:
        meta_path = Path(root).resolve() / "lab.json"
        if not meta_path.is_file():
            raise BadInput(f"no lab in {root} (no lab.json)", hint=f"start one: splitter lab up --dir {root}")
        return cls(root, json.loads(meta_path.read_text())["base_port"], progress)

    @property
    def adapter(self) -> AnsibleAdapter:
        return AnsibleAdapter(self.layout.inventory_path, self.layout.root / ".ansible")

    def _client(self, host: LabHost) -> MongoClient:
        return MongoClient(host.host, directConnection=True, serverSelectionTimeoutMS=3000)

    # -- up -----------------------------------------------------------------------------------------
    def _refuse_existing(self) -> None:
        if self.layout.meta_path.exists():
            running = [f"{p.name} (pid {p.pid})" for p in self.processes() if p.alive]
            detail = f"running: {', '.join(running)}" if running else "stopped"
            raise BadInput(f"{self.layout.root} already holds a lab ({detail})",
                           hint=f"use it as it is, or `splitter lab down --dir {self.layout.root} --purge` first")
        busy = [f"{h.name}:{port}" for h in self.layout.hosts for port in (h.port, h.maintenance_port)
                if port_in_use(port)]
        if busy:
            raise BadInput(f"lab ports already in use: {', '.join(busy)}",
                           hint="stop what listens there or choose another --base-port")

    def up(self, docs: int = 20_000, cache: Path | None = None, inventory_vars: dict[str, Any] | None = None,
           config_extra: dict[str, Any] | None = None) -> None:
        self._refuse_existing()
        mongod_bin = find_mongod()
        self.layout.write_files(mongod_bin, inventory_vars, config_extra)
        self.layout.meta_path.write_text(json.dumps({"base_port": self.layout.base_port, "docs": docs,
                                                     "mongod": str(mongod_bin)}))
        snapshot = self._snapshot_dir(cache, docs, mongod_bin, inventory_vars) if cache else None
        if snapshot and snapshot.is_dir():
            self.progress(f"restoring loaded dbpaths from {snapshot}")
            for host in self.layout.data_nodes:
                shutil.copytree(snapshot / host.name, host.dbpath)
            self._start_rs1()
            self._wait_primary_on_node1()
            return
        self._start_rs1()
        self._initiate()
        self._wait_primary_on_node1()
        self.progress(f"loading {docs} documents into app.users, app.events, app.sessions")
        with MongoClient(self.layout.connection_string, serverSelectionTimeoutMS=10000) as client:
            load_documents(client, docs)
        if snapshot:
            self._save_snapshot(snapshot)

    def _snapshot_dir(self, cache: Path, docs: int, mongod_bin: Path, extra: dict[str, Any] | None) -> Path:
        key = json.dumps([SNAPSHOT_FORMAT, self.layout.base_port, docs, str(mongod_bin), extra, LAB_SETTINGS],
                         sort_keys=True, default=str)
        return Path(cache) / hashlib.sha1(key.encode()).hexdigest()[:16]

    def _save_snapshot(self, snapshot: Path) -> None:
        self.progress("saving a snapshot of the loaded dbpaths for the next lab")
        self.stop_hosts([h.name for h in self.layout.data_nodes])
        partial = snapshot.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for host in self.layout.data_nodes:
            # Preallocated journal files are recreated by mongod; copying them only costs time.
            shutil.copytree(host.dbpath, partial / host.name, ignore=shutil.ignore_patterns("WiredTigerPreplog.*",
                                                                                            "mongod.lock"))
        partial.rename(snapshot)
        self._start_rs1()
        self._wait_primary_on_node1()

    def _start_rs1(self) -> None:
        self.progress("starting node1..node4 as rs1")
        self.adapter.run("mongod_start.yml", list(DATA_NODES), {"mongod_mode": "replset", "replset_name": SOURCE_SET})

    def _initiate(self) -> None:
        members = [{"_id": i, "host": h.host} for i, h in enumerate(self.layout.data_nodes)]
        with self._client(self.layout.host("node1")) as client:
            client.admin.command("replSetInitiate", {"_id": SOURCE_SET, "members": members,
                                                     "settings": LAB_SETTINGS})

    def _wait_primary_on_node1(self) -> None:
        node1 = self.layout.host("node1")
        self.progress("waiting for a primary on node1 and three secondaries")
        with self._client(node1) as client:
            def ready() -> bool:
                status = client.admin.command("replSetGetStatus")
                states = {m["name"]: m["stateStr"] for m in status["members"]}
                if states.get(node1.host) == "PRIMARY":
                    return sorted(states.values()) == ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]
                if "PRIMARY" in states.values() or list(states.values()).count("SECONDARY") == 4:
                    client.admin.command("replSetStepUp")  # node1 calls an election and wins it
                return False

            _wait("rs1 with PRIMARY on node1", ready, timeout=120, interval=0.5)

    # -- status / down ------------------------------------------------------------------------------
    def _mode(self, host: LabHost) -> tuple[str, int | None]:
        try:
            text = host.conf.read_text()
        except OSError:
            return "unknown", None
        if "replSetName:" in text:
            name = text.split("replSetName:", 1)[1].split()[0]
            return f"replset {name}", host.port
        return "standalone", host.maintenance_port

    def processes(self) -> list[ProcessInfo]:
        result = []
        for host in self.layout.hosts:
            pid = read_pid(host.pidfile)
            alive = mongod_alive(pid)
            mode, port = self._mode(host)
            state = "DOWN"
            if alive and port:
                state = self._state(port)
            result.append(ProcessInfo(host.name, pid if alive else None, alive, port if alive else None,
                                      mode if alive else "-", state))
        return result

    @staticmethod
    def _state(port: int) -> str:
        try:
            with MongoClient(f"127.0.0.1:{port}", directConnection=True, serverSelectionTimeoutMS=1500) as c:
                hello = c.admin.command("hello")
        except PyMongoError:
            return "UNREACHABLE"
        if not hello.get("setName"):
            return "STANDALONE"
        role = ("PRIMARY" if hello.get("isWritablePrimary") else "SECONDARY" if hello.get("secondary")
                else "ARBITER" if hello.get("arbiterOnly") else "OTHER")
        return f"{hello['setName']}/{role}"

    def stop_hosts(self, names: list[str]) -> None:
        """Clean stop: `shutdown` with a 1 s timeout first (a primary otherwise quiesces for 15 s on
        SIGTERM), then the stop playbook, which waits for each pid to exit."""
        ports = [info.port for info in self.processes() if info.name in names and info.alive and info.port]
        with ThreadPoolExecutor(max(len(ports), 1)) as pool:
            list(pool.map(lambda port: request_shutdown(f"127.0.0.1:{port}", timeout_secs=1), ports))
        self.adapter.run("mongod_stop.yml", names)

    def down(self, purge: bool = False) -> list[str]:
        """Stop every lab process by its own pid; safe to run twice. Returns the names that were stopped."""
        running = [p.name for p in self.processes() if p.alive]
        if running:
            self.progress(f"stopping {', '.join(running)}")
            try:
                self.stop_hosts(running)
            except OperationalError as exc:
                self.progress(f"playbook stop failed ({exc.message}); stopping by pid directly")
            for host in self.layout.hosts:  # last resort, still by the lab's own pids
                pid = read_pid(host.pidfile)
                if mongod_alive(pid) and pid is not None:
                    terminate(pid)
        if purge:
            shutil.rmtree(self.layout.root, ignore_errors=True)
        return running
