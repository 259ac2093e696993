"""`splitter lab up|status|down`: real mongod processes in DIR, started and stopped by the playbooks."""

from __future__ import annotations

import dataclasses
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
from splitter.lab.primary import PrimaryDecision, decide
from splitter.lab.processes import mongod_alive, port_in_use, read_pid, terminate
from splitter.lab.security import ADMIN_ROLES, REPLSET_ROLE, REPLSET_ROLE_PRIVILEGES, LabSecurity
from splitter.mongod_binary import find_mongod
from splitter.waiting import wait_until

LAB_SETTINGS = {"electionTimeoutMillis": 5000, "heartbeatIntervalMillis": 1000}
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



class Lab:
    """One lab directory. All starts and stops go through the mongod_start / mongod_stop playbooks."""

    def __init__(self, root: Path, base_port: int = 27017, progress: Progress = _quiet, *, auth: bool = False,
                 tls: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.layout = LabLayout(Path(root).resolve(), base_port, tuple(extra))
        self.progress = progress
        self.security = LabSecurity(self.layout.root, auth, tls)

    @classmethod
    def existing(cls, root: Path, progress: Progress = _quiet) -> Lab:
        meta_path = Path(root).resolve() / "lab.json"
        if not meta_path.is_file():
            raise BadInput(f"no lab in {root} (no lab.json)", hint=f"start one: splitter lab up --dir {root}")
        meta = json.loads(meta_path.read_text())
        return cls(root, meta["base_port"], progress, auth=meta.get("auth", False), tls=meta.get("tls", False),
                   extra=tuple(meta.get("extra_hosts", ())))

    @property
    def adapter(self) -> AnsibleAdapter:
        return AnsibleAdapter(self.layout.inventory_path, self.layout.root / ".ansible")

    def client_options(self, *, system: bool = False) -> dict[str, Any]:
        """TLS and credentials for a pymongo client of this lab (empty for a lab without auth and TLS)."""
        return self.security.client_options(system=system)

    def _client(self, host: LabHost, *, system: bool = False) -> MongoClient:
        return MongoClient(host.host, directConnection=True, serverSelectionTimeoutMS=3000,
                           **self.client_options(system=system))

    def _set_client(self, *, system: bool = False) -> MongoClient:
        return MongoClient(self.layout.connection_string, serverSelectionTimeoutMS=60000,
                           **self.client_options(system=system))

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
           config_extra: dict[str, Any] | None = None, *, auth: bool = False, tls: bool = False) -> None:
        """Start rs1 and load it. `auth`: a keyFile and the SCRAM user splitter-admin (name and password in
        DIR/secrets, named in split.yaml's `credentials:`); `tls`: a self-signed CA, requireTLS everywhere."""
        self._refuse_existing()
        self.security = LabSecurity(self.layout.root, auth, tls)
        mongod_bin = find_mongod()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.security.create_files()
        self.layout.write_files(mongod_bin, {**(inventory_vars or {}), **self.security.inventory_vars()},
                                {**self.security.credentials_config(), **(config_extra or {})})
        self.layout.meta_path.write_text(json.dumps({"base_port": self.layout.base_port, "docs": docs,
                                                     "mongod": str(mongod_bin), "auth": auth, "tls": tls}))
        snapshot = self._snapshot_dir(cache, docs, mongod_bin, inventory_vars) if cache else None
        if snapshot and snapshot.is_dir():
            self.progress(f"restoring loaded dbpaths from {snapshot}")
            for host in self.layout.data_nodes:
                shutil.copytree(snapshot / host.name, host.dbpath)
            self._start_rs1()
            if auth:
                self._admin_user(create=False)
            self._wait_primary_on_node1()
            return
        self._start_rs1()
        self._initiate()
        if auth:
            self._admin_user(create=True)
        self._wait_primary_on_node1()
        self.progress(f"loading {docs} documents into app.users, app.events, app.sessions")
        with self._set_client() as client:
            load_documents(client, docs)
        if snapshot:
            self._save_snapshot(snapshot)

    def _snapshot_dir(self, cache: Path, docs: int, mongod_bin: Path, extra: dict[str, Any] | None) -> Path:
        # Whether the set has users is part of the dbpaths; the keyFile, the certificates (per-lab paths) and
        # TLS itself are not, so an --auth --tls lab restores an --auth snapshot (and gets its own password).
        # (Labs without auth keep the key they always had.)
        parts = [SNAPSHOT_FORMAT, self.layout.base_port, docs, str(mongod_bin), extra, LAB_SETTINGS]
        key = json.dumps(parts + ([{"auth": True}] if self.security.auth else []), sort_keys=True, default=str)
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
        # With auth (and the localhost exception off in mongod.conf) the keyFile's __system user initiates.
        with self._client(self.layout.host("node1"), system=True) as client:
            client.admin.command("replSetInitiate", {"_id": SOURCE_SET, "members": members,
                                                     "settings": LAB_SETTINGS})

    def _admin_user(self, *, create: bool) -> None:
        """Create splitter-admin (a fresh lab) or give it this lab's password (dbpaths restored from the cache,
        where it has another lab's). The password travels only inside the authenticated connection."""
        self.progress(f"{'creating' if create else 'setting the password of'} {self.security.files.username()}")
        password = self.security.files.password()
        with self._set_client(system=True) as client:
            if create:
                client.admin.command("createRole", REPLSET_ROLE, privileges=REPLSET_ROLE_PRIVILEGES, roles=[],
                                     writeConcern={"w": "majority"})
                client.admin.command("createUser", self.security.files.username(), pwd=password, roles=ADMIN_ROLES,
                                     writeConcern={"w": "majority"})
            else:
                client.admin.command("updateUser", self.security.files.username(), pwd=password,
                                     writeConcern={"w": "majority"})

    def _wait_primary_on_node1(self) -> None:
        """Wait until node1 is PRIMARY and every member agrees on it and on the term (lab.primary.decide). A
        member that lost an election bumped its own term; node1 steps down when it hears of it, so a set that
        only looks ready from node1 may still hold an election right after `lab up` returns."""
        node1 = self.layout.host("node1")
        self.progress("waiting for a primary on node1 and three secondaries")
        clients = {host.host: self._client(host) for host in self.layout.data_nodes}
        last: list[PrimaryDecision] = []
        stepped_up: list[float] = []

        def view(client: MongoClient) -> dict[str, Any] | str:
            try:
                return client.admin.command("replSetGetStatus")
            except PyMongoError as exc:
                return type(exc).__name__

        def ready() -> bool:
            since = time.monotonic() - stepped_up[-1] if stepped_up else None
            decision = decide({host: view(c) for host, c in clients.items()}, node1.host, since)
            last[:] = [decision]
            if decision.action == "step-up":
                stepped_up.append(time.monotonic())
                clients[node1.host].admin.command("replSetStepUp")  # node1 calls an election and wins it
            return decision.action == "ready"

        try:
            wait_until("rs1 with PRIMARY on node1", ready, timeout=300, interval=0.5, progress=self.progress,
                       describe=lambda: last[0].sentence if last else "no member answered yet")
        finally:
            for client in clients.values():
                client.close()

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
                state = self._state(port, host.address)
            result.append(ProcessInfo(host.name, pid if alive else None, alive, port if alive else None,
                                      mode if alive else "-", state))
        return result

    def _state(self, port: int, address: str = "127.0.0.1") -> str:
        # `hello` needs no user (arbiters have none), only TLS when the lab uses it.
        try:
            with MongoClient(f"{address}:{port}", directConnection=True, serverSelectionTimeoutMS=1500,
                             **self.security.tls_options()) as c:
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
        targets = [(info.name, info.port) for info in self.processes()
                   if info.name in names and info.alive and info.port]
        with ThreadPoolExecutor(max(len(targets), 1)) as pool:
            list(pool.map(lambda target: self._request_shutdown(*target), targets))
        self.adapter.run("mongod_stop.yml", names)

    def _request_shutdown(self, name: str, port: int) -> bool:
        # Arbiters hold no users: with auth the lab stops them as the keyFile's __system user.
        host = f"{self.layout.host(name).address}:{port}"
        try:
            options = self.client_options(system=name.startswith("arbiter"))
            with MongoClient(host, directConnection=True, serverSelectionTimeoutMS=2000, **options) as client:
                return request_shutdown(host, timeout_secs=1, client=client)
        except (OSError, PyMongoError) as exc:  # secrets gone, authentication refused: the playbook stops it by pid
            self.progress(f"shutdown command on {name} failed ({type(exc).__name__}); stopping by pid")
            return False

    def down(self, purge: bool = False) -> list[str]:
        """Stop every lab process by its own pid; safe to run twice. Returns the names that were stopped."""
        if self.layout.meta_path.is_file():  # hosts added by `lab grow` since this object was made
            extra = tuple(json.loads(self.layout.meta_path.read_text()).get("extra_hosts", ()))
            self.layout = dataclasses.replace(self.layout, extra=extra)  # keeps a subclass's own fields (netns)
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
