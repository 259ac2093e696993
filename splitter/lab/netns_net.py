"""The netns lab's network: one namespace per host, a veth into a lab-made bridge, a private /24 with no route out.

Touches: network namespaces, veth pairs and one bridge, all named with a prefix derived from the lab directory;
never the machine's own interfaces or routes. Every name is recorded in DIR/netns.json before it is created,
so `down` (even after a crash of `up`) removes exactly what this lab made.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from splitter.errors import BadInput, OperationalError

RECORD = "netns.json"
HOST_NAMES = ("node1", "node2", "node3", "node4", "arbiter1", "arbiter2")


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`ip ARGS` (inside `netns` when given); a failure with check=True is an OperationalError."""
    argv = ["ip", *(("netns", "exec", netns, "ip") if netns else ()), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise OperationalError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}",
                               hint="is this machine's user root (network namespaces need CAP_NET_ADMIN)?")
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = ip("-o", "-4", "route", "show", "table", "all", check=False).stdout.split("\n")
    nets = []
    for line in out:
        first = line.split(" ", 1)[0]
        if first and first[0].isdigit():
            nets.append(ipaddress.ip_network(first if "/" in first else f"{first}/32", strict=False))
    return nets


@dataclass
class NetPlan:
    """Every name and address of one lab's network, decided before anything exists."""

    root: str
    prefix: str
    subnet: str
    created: list[str] = field(default_factory=list)  # "netns:NAME", "link:NAME" in creation order

    @classmethod
    def choose(cls, root: Path) -> NetPlan:
        digest = hashlib.sha1(str(root).encode()).digest()
        prefix = "sp" + digest.hex()[:5]
        used = _used_networks()
        for step in range(256):
            candidate = ipaddress.ip_network(f"10.{200 + digest[0] % 50}.{(digest[1] + step) % 256}.0/24")
            if not any(candidate.overlaps(n) for n in used if n.prefixlen > 0):
                return cls(str(root), prefix, str(candidate))
        raise OperationalError("no free 10.2xx.y.0/24 subnet for the lab's bridge")

    @classmethod
    def load(cls, root: Path) -> NetPlan | None:
        try:
            return cls(**json.loads((root / RECORD).read_text()))
        except FileNotFoundError:
            return None

    def save(self) -> None:
        path = Path(self.root) / RECORD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)

    # -- names ----------------------------------------------------------------------------------------
    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def veth_outside(self, host: str) -> str:
        return f"{self.prefix}h{HOST_NAMES.index(host)}"

    def veth_inside(self, host: str) -> str:
        return f"{self.prefix}n{HOST_NAMES.index(host)}"

    @property
    def bridge_address(self) -> str:
        """The orchestrator's address on the lab network (the root namespace's end of the bridge)."""
        return str(ipaddress.ip_network(self.subnet)[1])

    def address(self, host: str) -> str:
        return str(ipaddress.ip_network(self.subnet)[11 + HOST_NAMES.index(host)])

    @property
    def length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    # -- create / destroy -------------------------------------------------------------------------------
    def _record(self, item: str) -> None:
        if item not in self.created:
            self.created.append(item)
            self.save()

    def create(self) -> None:
        """Bridge, then for each host: namespace, veth pair, addresses. Each name recorded before creation."""
        if ip("link", "show", self.bridge, check=False).returncode == 0:
            raise BadInput(f"bridge {self.bridge} already exists (another lab in {self.root}?)",
                           hint=f"splitter lab down --dir {self.root}")
        self._record(f"link:{self.bridge}")
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.bridge_address}/{self.length}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in HOST_NAMES:
            ns, outside, inside = self.namespace(host), self.veth_outside(host), self.veth_inside(host)
            self._record(f"netns:{ns}")
            ip("netns", "add", ns)
            self._record(f"link:{outside}")  # deleting one end of a veth pair deletes both
            ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            ip("link", "set", outside, "master", self.bridge, "up")
            ip("link", "set", "lo", "up", netns=ns)
            ip("addr", "add", f"{self.address(host)}/{self.length}", "dev", inside, netns=ns)
            ip("link", "set", inside, "up", netns=ns)
            # No default route: the namespace reaches the bridge's /24 and nothing else.

    def namespace_pids(self, host: str) -> list[int]:
        result = ip("netns", "pids", self.namespace(host), check=False)
        return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []

    def kill_all(self, hosts: tuple[str, ...] | list[str], timeout: float = 30) -> list[int]:
        """SIGKILL every process in these hosts' namespaces until none is left (a namespace only goes away with
        its last process). Returns the pids it killed."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [pid for host in hosts for pid in self.namespace_pids(host)]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)
        return sorted(set(killed))

    def existing(self) -> list[str]:
        """Recorded items that still exist."""
        namespaces = set(ip("netns", "list", check=False).stdout.split())
        alive = []
        for item in self.created:
            kind, name = item.split(":", 1)
            if (kind == "netns" and name in namespaces) or (
                    kind == "link" and ip("link", "show", name, check=False).returncode == 0):
                alive.append(item)
        return alive

    def destroy(self) -> list[str]:
        """Delete every recorded item that exists, newest first. Safe to run twice."""
        removed = []
        for item in reversed(self.existing()):
            kind, name = item.split(":", 1)
            if kind == "netns":
                ip("netns", "delete", name, check=False)
            else:
                ip("link", "delete", name, check=False)
            removed.append(item)
        return removed
