"""Faults during the catch-up, on the netns lab over SSH (one lab, one split, scenarios in order while
`splitter run` waits at deploy-client-v2 and the catch-up replays rs1's writes of rs2's half):

- rs2's primary partitioned from the orchestrator -> bounded retries: the run either keeps waiting or stops
  with a clear error naming rs2; after heal the catch-up applies again (a stopped run is started again);
- the orchestrator SIGKILLed during such a partition, rerun after heal -> the catch-up resumes;
- rs1's primary host (node1) lost -> rs1 elects node2 with arbiter1, the run keeps waiting; once node1 is back
  (the majority commit point moves again) the catch-up resumes from its token;
then the cutover completes: topology from each host, halves, 0 lost acknowledged writes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from pymongo import MongoClient

from splitter.lab.lab import Lab
from splitter.lab.netns_faults import ORCHESTRATOR, Faults
from splitter.waiting import wait_until
from tests.helpers import Writer, rs1_client
from tests.netns_run import (
    Run,
    applied,
    assert_halves,
    assert_topology_from_each_host,
    confirm,
    finish_cutover,
    status,
    wait_applied_beyond,
    wait_gate,
)

pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]  # a split over SSH takes minutes on a busy box

SCENARIO: dict[str, object] = {}
PARTITION_SECS = 25  # longer than a server selection timeout of the catch-up's rs2 client, so retries happen


@pytest.fixture(scope="module", autouse=True)
def _scenario_cleanup(netns_lab: Lab) -> Iterator[None]:
    """The background run and the writer never outlive the file (also when a scenario fails or is interrupted);
    requested after netns_lab, so this runs before the lab goes down."""
    yield
    run, writer = SCENARIO.get("run"), SCENARIO.get("writer")
    if isinstance(run, Run):
        run.kill()
    if isinstance(writer, Writer):
        writer.stop()


def _hello(lab: Lab, name: str) -> dict:
    with MongoClient(lab.layout.host(name).host, directConnection=True, serverSelectionTimeoutMS=5000) as client:
        return client.admin.command("hello")


def _rs2_primary(lab: Lab) -> str:
    primary = _hello(lab, "node3").get("primary")
    return next(n for n in ("node3", "node4") if lab.layout.host(n).host == primary)


def _current(lab: Lab) -> tuple[str, Run, Writer]:
    run, writer = SCENARIO.get("run"), SCENARIO.get("writer")
    assert isinstance(run, Run) and isinstance(writer, Writer), "needs the scenario before it"
    return str(lab.layout.config_path), run, writer


def _rerun(config: str) -> Run:
    run = Run(config)
    SCENARIO["run"] = run
    wait_gate(config, "deploy-client-v2", run)
    return run


def test_the_split_reaches_the_catch_up_under_a_writer(netns_lab: Lab) -> None:
    config = str(netns_lab.layout.config_path)
    SCENARIO["writer"] = Writer(rs1_client(netns_lab)).start()
    run = Run(config)
    SCENARIO["run"] = run
    wait_gate(config, "deploy-client-v1", run)
    confirm(config, "deploy-client-v1")
    wait_gate(config, "deploy-client-v2", run)
    assert wait_applied_beyond(config, 10) > 10


def test_rs2_primary_partitioned_from_the_orchestrator_during_the_catch_up(netns_lab: Lab) -> None:
    config, run, _writer = _current(netns_lab)
    primary = _rs2_primary(netns_lab)
    with Faults(netns_lab).partitioned(primary, [ORCHESTRATOR]):
        time.sleep(PARTITION_SECS)
        exited = run.proc.poll()
    if exited is not None:  # gave up after its bounded retries: a clear failure that names the target set
        assert exited == 1, run.output()
        assert "rs2" in run.output() or netns_lab.layout.host(primary).address in run.output(), run.output()[-2000:]
        run = _rerun(config)
    assert run.proc.poll() is None, run.output()
    wait_applied_beyond(config, 10)


def test_orchestrator_killed_during_a_partition_then_rerun_after_heal(netns_lab: Lab) -> None:
    config, run, _writer = _current(netns_lab)
    primary = _rs2_primary(netns_lab)
    with Faults(netns_lab).partitioned(primary, [ORCHESTRATOR]):
        time.sleep(5)
        run.proc.send_signal(signal.SIGKILL)
        assert run.proc.wait(timeout=30) == -signal.SIGKILL
    before = applied(config)
    _rerun(config)
    assert wait_applied_beyond(config, 10) > before


def test_rs1_primary_host_lost_during_the_catch_up(netns_lab: Lab) -> None:
    config, run, _writer = _current(netns_lab)
    faults = Faults(netns_lab)
    assert _hello(netns_lab, "node1")["isWritablePrimary"]
    killed = faults.lose("node1")
    assert killed and netns_lab.plan.namespace_pids("node1") == []
    wait_until("node2 to become rs1's primary", lambda: _hello(netns_lab, "node2").get("isWritablePrimary"),
               timeout=120, interval=1)
    # rs1 is node2 + arbiter1 now: writes are taken but not majority-committed (w: majority, the set's default,
    # waits), and the change stream only returns committed writes. The run keeps waiting at the gate meanwhile.
    before = applied(config)
    assert run.proc.poll() is None, run.output()
    assert status(config).get("waiting_gate") == "deploy-client-v2"
    faults.restore("node1")  # the machine comes back; it rejoins rs1 as a secondary and the commit point moves
    wait_until("node1 to rejoin rs1", lambda: _hello(netns_lab, "node1").get("secondary"), timeout=180, interval=1)
    wait_applied_beyond(config, 10, timeout=300)  # resumed from its token against the new primary
    assert applied(config) > before and run.proc.poll() is None, run.output()
    assert status(config).get("waiting_gate") == "deploy-client-v2"


def test_the_cutover_after_the_faults_loses_nothing(netns_lab: Lab) -> None:
    _config, run, writer = _current(netns_lab)
    finish_cutover(netns_lab, run, writer)
    assert_topology_from_each_host(netns_lab)
    assert_halves(netns_lab, writer)
