"""Driving a split on the netns lab the production way: `splitter run` in the background, gates passed with
`splitter confirm` while a writer keeps writing through rs1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.lab.layout import ARBITERS, DATA_NODES
from splitter.store.catchup_position import PositionStore
from splitter.waiting import wait_until
from tests.cutover_driver import Run, app_for, confirm, finish, wait_switch
from tests.helpers import Writer, half_snapshot, rs1_client, rs2_client


# The tests poll these every second for minutes: they read the state directory the run writes (a `splitter status`
# process per poll would cost a Python start and an inventory load each time, on a machine already at its limit).
def status(config: str) -> dict:
    """The run's checkpoint (steps, waiting_gate, cutover) as `status --json` shows it."""
    path = Path(config).parent / "state" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def applied(config: str) -> int:
    """Writes the catch-up into rs2 has applied so far (its position file's counter)."""
    position = PositionStore(Path(config).parent / "state", "rs2").load()
    return position.counters.get("applied", 0) if position else 0


def wait_gate(config: str, gate: str, run: Run, timeout: float = 1500) -> None:
    def waiting() -> bool:
        assert run.proc.poll() is None, run.output()
        return status(config).get("waiting_gate") == gate

    wait_until(f"gate {gate}", waiting, timeout=timeout, interval=1)


def wait_applied_beyond(config: str, more: int, timeout: float = 300) -> int:
    """Wait until the catch-up applied `more` writes beyond what it had applied now; returns the new count."""
    first = applied(config)
    wait_until("the catch-up to apply writes", lambda: applied(config) > first + more, timeout=timeout, interval=1)
    return applied(config)


def finish_cutover(lab: Lab, run: Run, writer: Writer) -> None:
    """Client v2 replaces the old client at the deploy-client-v2 gate: the lab application (it follows the
    published routing, writes both halves through the fence and the switch) starts, the old writer stops, the gate
    is confirmed; once the switch is verified `finalize` is asked and the run exits 0. Every write the application
    had acknowledged is then on the set that owns it, with its last value."""
    config = str(lab.layout.config_path)
    app = app_for(lab).start()
    try:
        writer.stop()
        confirm(config, "deploy-client-v2")
        wait_switch(lab, "verified", 2, run)
        finish(lab, run)
    finally:
        app.stop()
        writer.stop()
        run.kill()
    assert app.failures == [], app.failures[:5]
    checked = app.check()
    assert checked.ok and checked.checked > 20, checked.problems[:10]


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
    finish_cutover(lab, run, writer)
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
