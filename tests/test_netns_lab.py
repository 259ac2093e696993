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
