"""Network faults for tests on the netns lab: partition a host (from all, or from one peer), heal, lose a host.

A partition is a silent drop, as on a real network: each side gets a permanent neighbour entry for the other
with a MAC address no interface on the bridge has, so frames leave and vanish (no reset, no ICMP). The peer
"orchestrator" is the root namespace's end of the bridge. Faults are recorded in DIR/faults.json; `lab down`
removes the namespaces (and with them every entry) anyway.

Touches: neighbour entries inside the lab's namespaces and on the lab's own bridge; kills processes inside
one lab namespace (lose), starts sshd and mongod there again (restore).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from splitter.errors import BadInput, OperationalError
from splitter.lab.netns_net import HOST_NAMES, ip

if TYPE_CHECKING:
    from splitter.lab.netns import NetnsLab

ORCHESTRATOR = "orchestrator"
BLACKHOLE_MAC = "02:00:5e:de:ad:01"  # locally administered, never given to a lab interface


class Faults:
    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self.plan = lab.plan
        self.path = lab.layout.root / "faults.json"

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"partitions": [], "lost": []}

    def _save(self, data: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(data))

    def describe(self) -> dict[str, str]:
        data = self._load()
        result: dict[str, list[str]] = {}
        for a, b in data["partitions"]:
            result.setdefault(a, []).append(f"cut from {b}")
            result.setdefault(b, []).append(f"cut from {a}")
        for host in data["lost"]:
            result.setdefault(host, []).append("lost")
        for host in data.get("ssh_down", []):
            result.setdefault(host, []).append("sshd stopped")
        return {h: ", ".join(v) for h, v in result.items()}

    def _check(self, host: str) -> None:
        if host not in HOST_NAMES:
            raise BadInput(f"no host {host!r} in the lab; hosts: {', '.join(HOST_NAMES)}")

    # -- partitions -----------------------------------------------------------------------------------
    def _neigh(self, action: str, side: str, other: str) -> None:
        other_address = self.plan.bridge_address if other == ORCHESTRATOR else self.plan.address(other)
        if side == ORCHESTRATOR:
            args, netns = ("dev", self.plan.bridge), None
        else:
            args, netns = ("dev", self.plan.veth_inside(side)), self.plan.namespace(side)
        if action == "add":
            ip("neigh", "replace", other_address, "lladdr", BLACKHOLE_MAC, "nud", "permanent", *args, netns=netns)
        else:
            ip("neigh", "del", other_address, *args, netns=netns, check=False)

    def partition(self, host: str, peers: list[str] | None = None) -> None:
        """Cut host from each peer (default: every other host and the orchestrator), both directions."""
        self._check(host)
        targets = peers if peers is not None else [h for h in HOST_NAMES if h != host] + [ORCHESTRATOR]
        data = self._load()
        for peer in targets:
            if peer != ORCHESTRATOR:
                self._check(peer)
            pair = [host, peer]
            if pair not in data["partitions"]:
                data["partitions"].append(pair)
                self._save(data)  # recorded before it exists
            self._neigh("add", host, peer)
            self._neigh("add", peer, host)

    @contextlib.contextmanager
    def partitioned(self, host: str, peers: list[str] | None = None) -> Iterator[None]:
        """A partition for the duration of a `with` block; healed however the block ends."""
        self.partition(host, peers)
        try:
            yield
        finally:
            self.heal(host)

    def heal(self, host: str | None = None) -> None:
        """Remove the partitions of host (default: all of them)."""
        data = self._load()
        for pair in list(data["partitions"]):
            if host is None or host in pair:
                a, b = pair
                self._neigh("del", a, b)
                self._neigh("del", b, a)
                data["partitions"].remove(pair)
        self._save(data)

    # -- sshd only ------------------------------------------------------------------------------------------
    def stop_ssh(self, host: str) -> None:
        """Stop host's sshd (its mongod keeps running): SSH to it is refused, the database still answers."""
        self._check(host)
        data = self._load()
        data.setdefault("ssh_down", [])
        if host not in data["ssh_down"]:
            data["ssh_down"].append(host)
            self._save(data)
        pid = self.lab.sshd_pid(host)
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self.lab.sshd_pid(host) and time.monotonic() < deadline:
                time.sleep(0.05)
        # An open connection master (ControlPersist) would keep reaching the host without its listener.
        self.lab.ssh.stop_masters()

    def start_ssh(self, host: str) -> None:
        self._check(host)
        if not self.lab.sshd_pid(host):
            self.lab.ssh.start(host)
        data = self._load()
        data["ssh_down"] = [h for h in data.get("ssh_down", []) if h != host]
        self._save(data)

    # -- lose / restore -------------------------------------------------------------------------------
    def lose(self, host: str) -> list[int]:
        """SIGKILL every process in host's namespace (mongod, sshd, SSH sessions): the machine is gone."""
        self._check(host)
        data = self._load()
        if host not in data["lost"]:
            data["lost"].append(host)
            self._save(data)
        killed = self.plan.kill_all([host], timeout=10)
        return killed

    def restore(self, host: str) -> None:
        """Boot a lost host again: sshd, and mongod with the config it last had (as a reboot would)."""
        self._check(host)
        self.lab.ssh.start(host)
        lab_host = self.lab.layout.host(host)
        result = subprocess.run(["ip", "netns", "exec", self.plan.namespace(host), str(self.lab.mongod_bin()),
                                 "--config", str(lab_host.conf)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OperationalError(f"mongod on {host} did not start again: {result.stdout[-300:]}")
        data = self._load()
        data["lost"] = [h for h in data["lost"] if h != host]
        self._save(data)
