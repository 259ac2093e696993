"""One process per state dir: a second run is refused with the holder's pid and host; a dead holder's lock
(SIGKILL) is taken over safely. No mongod needed: the lock is taken before the cluster is contacted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from splitter.errors import LockHeld
from splitter.store.lock import StateLock
from tests.helpers import run_cli

HOLD = """
import sys, time
from pathlib import Path
from splitter.store.lock import StateLock
StateLock(Path(sys.argv[1])).acquire("splitter run (test holder)")
print("held", flush=True)
time.sleep(120)
"""


def _unreachable_config(tmp_path: Path) -> Path:
    """A valid config for a cluster that does not exist: if the lock failed, preflight would say so (exit 2)."""
    members = [{"name": f"node{i}", "host": f"127.0.0.1:{1 + i}"} for i in range(1, 5)]
    hosts = {m["name"]: {"mongod_port": int(m["host"].rsplit(":", 1)[1]), "mongod_dbpath": "/x",
                         "mongod_conf": "/x.conf", "mongod_log": "/x.log", "mongod_pidfile": "/x.pid"}
             for m in [*members, {"name": "arb1", "host": "127.0.0.1:7"}, {"name": "arb2", "host": "127.0.0.1:8"}]}
    inventory = {"all": {"vars": {"ansible_connection": "local", "mongod_manager": "process",
                                  "mongod_bin": "/bin/true"}, "hosts": hosts}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    config = {"source": {"name": "rs1", "members": members, "keep": ["node1", "node2"], "move": ["node3", "node4"]},
              "target": {"name": "rs2"},
              "arbiters": {"source": {"name": "arb1", "host": "127.0.0.1:7", "dbpath": "/x"},
                           "target": {"name": "arb2", "host": "127.0.0.1:8", "dbpath": "/x"}},
              "inventory": "inventory.yml", "state_dir": "state",
              "routing": {"remainders": {"rs1": 0, "rs2": 1}, "databases": {"app": None}}}
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def holder(tmp_path: Path):
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_run_is_refused_with_holder_pid_and_host(tmp_path: Path, holder: subprocess.Popen) -> None:
    config = _unreachable_config(tmp_path)
    result = run_cli("run", "-c", str(config), "--yes")
    assert result.returncode == 1, result.stderr
    assert f"pid {holder.pid}" in result.stderr and socket.gethostname() in result.stderr
    assert "Traceback" not in result.stderr


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path, holder: subprocess.Popen) -> None:
    lock = StateLock(tmp_path / "state")
    with pytest.raises(LockHeld):
        lock.acquire("second")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    time.sleep(0.1)
    lock.acquire("second")
    try:
        assert lock.holder()["pid"] == os.getpid() and lock.holder()["command"] == "second"
    finally:
        lock.release()
    # And a run on that state dir gets past the lock (to preflight, which finds no cluster: exit 2).
    result = run_cli("run", "-c", str(_unreachable_config(tmp_path)), "--yes")
    assert result.returncode == 2 and "no member of rs1 is reachable" in result.stderr, result.stderr
