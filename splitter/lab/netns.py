"""`splitter lab up --network netns`: six hosts, each a network namespace with sshd and mongod on 27017.

Touches: creates namespaces, veths and a bridge (splitter.lab.netns_net), starts sshd and mongod inside them;
`down` stops every process by pid and removes every recorded network item.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splitter.errors import BadInput
from splitter.lab.lab import Lab, Progress, _quiet
from splitter.lab.layout import ARBITERS, DATA_NODES, LabHost, LabLayout
from splitter.lab.netns_net import HOST_NAMES, RECORD, NetPlan
from splitter.lab.netns_ssh import LabSsh, find_sshd
from splitter.lab.processes import mongod_alive, port_in_use, read_pid, terminate
from splitter.waiting import wait_until

MONGOD_PORT = 27017


def open_lab(root: Path, progress: Progress = _quiet) -> Lab:
    """The lab in root, whichever network it uses."""
    if (Path(root) / RECORD).is_file():
        return NetnsLab.existing(root, progress)
    return Lab.existing(root, progress)


def _alive(pid: int | None, name: str) -> bool:
    if not pid:
        return False
    try:
        return name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and " Z " not in Path(
            f"/proc/{pid}/stat").read_text().split(")", 1)[-1][:3]
    except OSError:
        return False


@dataclass(frozen=True)
class NetnsLayout(LabLayout):
    """The lab layout with every host on its own address, port 27017, reached by Ansible over SSH."""

    plan: NetPlan | None = None

    @property
    def net(self) -> NetPlan:
        assert self.plan is not None
        return self.plan

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        return tuple(LabHost(n, MONGOD_PORT, self.root / n, self.net.address(n)) for n in DATA_NODES + ARBITERS)

    def inventory(self, mongod_bin: Path, extra_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        inventory = super().inventory(mongod_bin, {**LabSsh(self.root, self.net).ansible_vars(), **(extra_vars or {})})
        for group in inventory["all"]["children"].values():
            for name, host_vars in group["hosts"].items():
                address = self.net.address(name)
                host_vars.update(ansible_host=address, mongod_connect_host=address, mongod_wait_host=address,
                                 mongod_bind_ip=f"127.0.0.1,{address}", mongod_maintenance_bind_ip=address)
        return inventory


class NetnsLab(Lab):
    """A lab whose six hosts are network namespaces on a private bridge; the orchestrator stays outside."""

    network = "netns"

    def __init__(self, root: Path, base_port: int = MONGOD_PORT, progress: Progress = _quiet, *,
                 auth: bool = False, tls: bool = False) -> None:
        super().__init__(root, MONGOD_PORT, progress, auth=auth, tls=tls)
        resolved = self.layout.root
        self.plan = NetPlan.load(resolved) or NetPlan.choose(resolved)
        self.ssh = LabSsh(resolved, self.plan)
        self.layout = NetnsLayout(resolved, MONGOD_PORT, plan=self.plan)
        self._network_ready = False

    @classmethod
    def existing(cls, root: Path, progress: Progress = _quiet) -> NetnsLab:
        """The lab in root, also one whose `up` died before it wrote lab.json (netns.json is written first)."""
        root = Path(root).resolve()
        if not (root / RECORD).is_file():
            raise BadInput(f"no netns lab in {root} (no {RECORD})", hint=f"splitter lab up --network netns "
                           f"--dir {root}")
        meta = json.loads((root / "lab.json").read_text()) if (root / "lab.json").is_file() else {}
        return cls(root, MONGOD_PORT, progress, auth=meta.get("auth", False), tls=meta.get("tls", False))

    # -- up -------------------------------------------------------------------------------------------
    def _refuse_existing(self) -> None:
        if self._network_ready:  # Lab.up checks again after our network exists
            return
        root = self.layout.root
        if (root / RECORD).exists() or self.layout.meta_path.exists():
            raise BadInput(f"{root} already holds a lab", hint=f"splitter lab down --dir {root} --purge first")
        if os.geteuid() != 0:
            raise BadInput("the netns lab needs root (network namespaces, a bridge, sshd)",
                           hint="run as root, or use the default single-host lab (no --network)")
        if find_sshd() is None:
            raise BadInput("sshd not found; the netns lab runs one per host", hint="apt-get install -y openssh-server")

    def up(self, docs: int = 20_000, cache: Path | None = None, inventory_vars: dict[str, Any] | None = None,
           config_extra: dict[str, Any] | None = None, *, auth: bool = False, tls: bool = False) -> None:
        """Network, keys and sshd first (every name recorded in DIR/netns.json before it exists), then the
        single-host lab's own `up` over SSH. The dbpath cache is not used: the set's config holds addresses."""
        self._refuse_existing()
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.plan.save()
        self.progress(f"network {self.plan.subnet} on bridge {self.plan.bridge}, namespaces {self.plan.prefix}-*")
        self.plan.create()
        self.ssh.create_keys()
        for host in HOST_NAMES:
            self.ssh.start(host)
        for host in HOST_NAMES:
            address = self.plan.address(host)
            wait_until(f"sshd on {host} ({address})", lambda a=address: port_in_use(22, a), timeout=30,
                       interval=0.1, progress=self.progress)
        self._network_ready = True
        super().up(docs, None, inventory_vars, config_extra, auth=auth, tls=tls)

    def mongod_bin(self) -> Path:
        meta = json.loads(self.layout.meta_path.read_text())
        return Path(meta["mongod"])

    # -- status / down --------------------------------------------------------------------------------
    def sshd_pid(self, host: str) -> int | None:
        pid = read_pid(self.ssh.pidfile(host))
        return pid if _alive(pid, "sshd") else None

    def host_rows(self, faults: dict[str, str]) -> list[dict[str, Any]]:
        """One row per host: address, namespace, mongod and sshd pids, the replica-set state, its fault (from
        `Faults.describe()`, which sits above this module)."""
        return [{"host": p.name, "address": self.plan.address(p.name), "namespace": self.plan.namespace(p.name),
                 "mongod_pid": p.pid, "port": p.port, "state": p.state, "sshd_pid": self.sshd_pid(p.name),
                 "fault": faults.get(p.name, "")} for p in self.processes()]

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process by pid (mongod cleanly first), then whatever is left in the lab's namespaces,
        then remove the recorded namespaces, veths and bridge. Safe twice and after a crash of `up`."""
        stopped: list[str] = []
        running = [p for p in self.processes() if p.alive]
        if running:
            self.progress(f"stopping mongod on {', '.join(p.name for p in running)}")

            def stop(name: str, port: int | None) -> None:
                if port:
                    self._request_shutdown(name, port)
                pid = read_pid(self.layout.host(name).pidfile)
                if pid and mongod_alive(pid):
                    terminate(pid, timeout=30)

            with ThreadPoolExecutor(len(running)) as pool:
                list(pool.map(lambda p: stop(p.name, p.port), running))
            stopped += [p.name for p in running]
        for host in HOST_NAMES:
            pid = self.sshd_pid(host)
            if pid:
                os.kill(pid, signal.SIGTERM)
                stopped.append(f"{host} sshd")
        self.ssh.stop_masters()
        self.plan.kill_all(HOST_NAMES)  # SSH sessions, a mongod whose pid file was not written yet
        removed = self.plan.destroy()
        if removed:
            self.progress(f"removed {', '.join(item.split(':', 1)[1] for item in removed)}")
        if purge:
            shutil.rmtree(self.layout.root, ignore_errors=True)
        return stopped
