"""The netns lab's own lifecycle: `lab down` after a SIGKILL of `lab up` halfway leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splitter.lab.netns_net import HOST_NAMES, NetPlan
from tests.conftest import require_netns
from tests.helpers import run_cli

pytestmark = pytest.mark.mongod


def _processes_mentioning(text: str) -> list[str]:
    """Every live process whose command line names `text` (the lab's directory): sshd -f, mongod --config."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            zombie = (entry / "stat").read_text().split(")", 1)[-1].split()[0] == "Z"
        except OSError:
            continue
        if text in cmdline and not zombie and "pytest" not in cmdline:
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _leftovers(plan: NetPlan) -> list[str]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    left = [f"netns {line.split()[0]}" for line in namespaces.splitlines() if line.startswith(plan.prefix)]
    left += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if plan.prefix in line]
    return left + _processes_mentioning(plan.root)


def test_down_after_sigkill_of_up_halfway_leaves_nothing(tmp_path: Path) -> None:
    require_netns()
    lab_dir = tmp_path / "crashed"
    log = (tmp_path / "up.log").open("w")
    # Its own session: SIGKILL reaches `lab up` and the ansible-playbook it is running, as a crash would.
    up = subprocess.Popen([sys.executable, "-m", "splitter", "lab", "up", "--network", "netns", "--dir", str(lab_dir),
                           "--docs", "500"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # Halfway: sshd runs in every namespace and the first mongod has written its pid file.
        while time.monotonic() < deadline and not any((lab_dir / h / "mongod.pid").exists() for h in HOST_NAMES):
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.05)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    plan = NetPlan.load(lab_dir.resolve())
    assert plan is not None
    recorded = json.loads((lab_dir / "netns.json").read_text())["created"]
    assert len(recorded) == 1 + 2 * len(HOST_NAMES)  # bridge + a namespace and a veth per host
    pids = [int((lab_dir / h / f).read_text()) for h in HOST_NAMES for f in ("sshd.pid", "mongod.pid")
            if (lab_dir / h / f).exists()]
    assert _leftovers(plan), "the crashed `up` should have left something running"

    first = run_cli("lab", "down", "--dir", str(lab_dir))
    assert first.returncode == 0, first.stdout + first.stderr
    assert _leftovers(plan) == []
    assert not [pid for pid in pids if _alive(pid)], pids
    again = run_cli("lab", "down", "--dir", str(lab_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    assert _leftovers(plan) == []


def test_names_derive_from_the_directory_and_fit_the_kernel_limits(tmp_path: Path) -> None:
    """Two labs never share a name or a subnet; interface names stay within IFNAMSIZ (15 characters)."""
    first, second = NetPlan.choose(tmp_path / "a"), NetPlan.choose(tmp_path / "b")
    assert first.prefix != second.prefix and first.subnet != second.subnet
    for plan in (first, second):
        names = [plan.bridge] + [n for h in HOST_NAMES for n in (plan.veth_inside(h), plan.veth_outside(h))]
        assert all(len(n) <= 15 and n.startswith(plan.prefix) for n in names)
        addresses = {plan.address(h) for h in HOST_NAMES} | {plan.bridge_address}
        assert len(addresses) == 7 and all(a.startswith(plan.subnet.rsplit(".", 1)[0]) for a in addresses)
    assert NetPlan.choose(tmp_path / "a").prefix == first.prefix  # the same directory finds its own names


def test_inventory_reaches_every_host_over_ssh_on_27017(tmp_path: Path) -> None:
    import yaml

    from splitter.lab.netns import NetnsLayout

    plan = NetPlan.choose(tmp_path)
    layout = NetnsLayout(tmp_path, 27017, plan=plan)
    inventory = layout.inventory(Path("/usr/bin/mongod"))
    common = inventory["all"]["vars"]
    assert common["ansible_connection"] == "ssh" and common["splitter_lab"] is True
    assert str(tmp_path / "ssh" / "known_hosts") in common["ansible_ssh_common_args"]
    hosts = {n: v for g in inventory["all"]["children"].values() for n, v in g["hosts"].items()}
    assert set(hosts) == set(HOST_NAMES)
    for name, host_vars in hosts.items():
        assert host_vars["ansible_host"] == host_vars["mongod_connect_host"] == plan.address(name)
        assert host_vars["mongod_port"] == 27017 and host_vars["mongod_maintenance_bind_ip"] == plan.address(name)
    config = layout.split_config()
    assert [m["host"] for m in config["source"]["members"]] == [f"{plan.address(n)}:27017"
                                                                 for n in ("node1", "node2", "node3", "node4")]
    yaml.safe_dump(inventory)
