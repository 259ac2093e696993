"""Driving a split on the netns lab the production way: `splitter run` in the background, gates passed with
`splitter confirm` while a writer keeps writing through rs1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.lab.layout import ARBITERS, DATA_NODES
from splitter.waiting import wait_until
from tests.helpers import Writer, half_snapshot, rs1_client, rs2_client, run_cli


class Run:
    """`splitter run -c CONFIG [ARGS]` in the background; output in a file (a full pipe would block it)."""

    def __init__(self, config: str, *args: str) -> None:
        self.log = Path(config).parent / f"run-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "splitter", "run", "-c", config, *args], stdout=out,
                                         stderr=subprocess.STDOUT, text=True)
        self.returncode: int | None = None

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float = 900) -> int:
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def status(config: str) -> dict:
    return json.loads(run_cli("status", "-c", config, "--json").stdout)


def applied(config: str) -> int:
    return ((status(config).get("catch_up") or {}).get("counters") or {}).get("applied", 0)


def wait_gate(config: str, gate: str, run: Run, timeout: float = 1500) -> None:
    def waiting() -> bool:
        assert run.proc.poll() is None, run.output
        return status(config).get("waiting_gate") == gate

    wait_until(f"gate {gate}", waiting, timeout=timeout, interval=1)


def wait_applied_beyond(config: str, more: int, timeout: float = 300) -> int:
    """Wait until the catch-up applied `more` writes beyond what it had applied now; returns the new count."""
    first = applied(config)
    wait_until("the catch-up to apply writes", lambda: applied(config) > first + more, timeout=timeout, interval=1)
    return applied(config)


def confirm(config: str, gate: str) -> None:
    result = run_cli("confirm", "-c", config, gate)
    assert result.returncode == 0, result.stdout + result.stderr


def finish_cutover(config: str, run: Run, writer: Writer) -> None:
    """The old client is gone once client v2 is deployed: stop the writer, confirm deploy-client-v2, and the
    run (waiting at that gate) completes with exit 0."""
    try:
        writer.stop()
        confirm(config, "deploy-client-v2")
        assert run.wait() == 0, run.output
    finally:
        writer.stop()
        run.kill()


def split_with_gates(lab: Lab, during_catch_up: Callable[[Run], Run] | None = None, *, writer: Writer | None = None,
                     v1_passed: bool = False) -> tuple[Writer, Run]:
    """The whole split under a writer: confirm deploy-client-v1 when the run waits there; at deploy-client-v2
    let the catch-up apply writes (and call during_catch_up, which may replace the run), stop the old writer,
    confirm. Returns the writer and the finished run."""
    config = str(lab.layout.config_path)
    writer = writer or Writer(rs1_client(lab)).start()
    run = Run(config)
    try:
        if not v1_passed:
            wait_gate(config, "deploy-client-v1", run)
            confirm(config, "deploy-client-v1")
        wait_gate(config, "deploy-client-v2", run)
        wait_applied_beyond(config, 10)
        if during_catch_up is not None:
            run = during_catch_up(run)
    except BaseException:
        writer.stop()
        run.kill()
        raise
    finish_cutover(config, run, writer)
    return writer, run


EXPECTED = {"node1": "rs1", "node2": "rs1", "arbiter1": "rs1", "node3": "rs2", "node4": "rs2", "arbiter2": "rs2"}


def assert_topology_from_each_host(lab: Lab) -> None:
    """Each mongod, asked on its own address, is in the right set, names itself by that address, and sees the
    set's three members (two data nodes and one arbiter, all on port 27017)."""
    for name in DATA_NODES + ARBITERS:
        host = lab.layout.host(name)
        with MongoClient(host.host, directConnection=True, serverSelectionTimeoutMS=10000) as client:
            hello = client.admin.command("hello")
        set_name = EXPECTED[name]
        members = {lab.layout.host(n).host for n, s in EXPECTED.items() if s == set_name}
        assert hello["setName"] == set_name, (name, hello)
        assert hello["me"] == host.host and host.host.endswith(":27017") and not host.host.startswith("127.")
        assert set(hello["hosts"]) | set(hello.get("arbiters", [])) == members, (name, hello)
        assert len(hello.get("arbiters", [])) == 1 and hello.get("primary") in members


def assert_halves(lab: Lab, writer: Writer) -> None:
    """rs1 holds every even write, rs2 every odd one; both halves equal between the sets where they overlap."""
    rs1, rs2 = rs1_client(lab), rs2_client(lab)
    on_rs1 = {d["_id"] for d in rs1.app.writer.find({}, {"_id": 1})}
    on_rs2 = {d["_id"] for d in rs2.app.writer.find({}, {"_id": 1})}
    assert len(writer.acknowledged) > 100
    lost_even = {n for n in writer.acknowledged if n % 2 == 0} - on_rs1
    lost_odd = {n for n in writer.acknowledged if n % 2} - on_rs2
    assert lost_even == set() and lost_odd == set(), (sorted(lost_even)[:5], sorted(lost_odd)[:5])
    for name in ("users", "events", "sessions"):
        assert half_snapshot(rs1, name, 1) == half_snapshot(rs2, name, 1), name
        assert len(half_snapshot(rs1, name, 0)) > 0
