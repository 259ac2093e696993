"""Fixtures that start real mongod labs through the lab code and always stop them (by pid) afterwards.

Ports: each lab takes base..base+55. The base comes from SPLITTER_TEST_BASE_PORT (default 26000; +1000 per
xdist worker) plus an offset per fixture, so parallel developers can pick disjoint ranges.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from splitter.lab.lab import Lab

# pytest-xdist workers (gw0, gw1, ...) each get their own 1000 ports; all stay below the kernel's ephemeral
# range (32768+), where an outgoing connection could take a lab's port.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
BASE = int(os.environ.get("SPLITTER_TEST_BASE_PORT", "26000")) + 1000 * WORKER
SHARED_OFFSET = 0
FRESH_OFFSETS = (100, 200, 300)
DEFAULT_DOCS = 3000
LOG_KEEP_DIR = Path(os.environ.get("SPLITTER_TEST_LOGS", "test-logs"))


@pytest.fixture(scope="session")
def lab_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Loaded, cleanly shut down dbpaths reused across labs of the same shape (much faster than loading)."""
    return Path(os.environ.get("SPLITTER_LAB_CACHE") or tmp_path_factory.mktemp("lab-cache"))


def _keep_logs(lab: Lab, name: str) -> None:
    target = LOG_KEEP_DIR / name
    for host in lab.layout.hosts:
        if host.log.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(host.log, target / f"{host.name}.log")
    audit = lab.layout.root / "state" / "audit.jsonl"
    if audit.exists():
        shutil.copy(audit, target / "audit.jsonl")


# -- scheduling: the long scenarios first ---------------------------------------------------------------------
# `make test` runs `-n 4 --dist loadfile --no-loadscope-reorder`: a file runs on one worker (its tests may share a
# module-scoped lab or a scenario in order). xdist's default reorder starts with the files that hold the most
# tests (the quick unit tests) and leaves the long lab scenarios for the end, where they crowd two cores together
# and the tail is the suite's longest part. Here files are put in order of their measured cost (seconds of one
# worker, `--durations=0`, full suite on 2 cores, 2026-12-01), so the scenarios start at once and the quick tests
# fill the gaps. (`--dist loadgroup` cannot do this here: pytest 9 ignores the nodeid suffix it relies on.)
FILE_COST: dict[str, float] = {
    "test_netns_faults_catchup.py": 1700, "test_netns_faults_steps.py": 1500, "test_story.py": 1700,
    "test_split_e2e.py": 450, "test_cutover.py": 1200, "test_cutover_race.py": 1000, "test_cleanup.py": 1000,
    "test_catchup_worker.py": 900, "test_split_sigkill.py": 800, "test_failures.py": 800,
    "test_cutover_reverse.py": 800, "test_bad_input.py": 800, "test_production_wheel.py": 700, "test_demo.py": 700,
    "test_grow.py": 700, "test_cleanup_interlock.py": 600, "test_grow_bad_input.py": 550, "test_auth.py": 500,
    "test_catchup_guarantees.py": 500, "test_safety_anchor.py": 500, "test_production_node_config.py": 400,
    "test_safety_preflight.py": 400, "test_metrics.py": 400, "test_verify.py": 350, "test_lab.py": 300,
    "test_cleanup_schedule.py": 300, "test_netns_lab.py": 250, "test_grow_split_arbiter.py": 250,
    "test_cutover_commands.py": 220, "test_hooks.py": 150, "test_cleanup_batches.py": 140, "test_routing_pin.py": 120,
}
# A whole split with a live application takes minutes, and more when it shares two cores with three others.
SCENARIO_TIMEOUT = 2700


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give lab scenarios the scenario timeout and sort by file cost, heaviest first (stable: a file's tests keep
    their order)."""
    for item in items:
        if FILE_COST.get(item.path.name, 0) >= 400 and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SCENARIO_TIMEOUT))
    items.sort(key=lambda item: -FILE_COST.get(item.path.name, 0.0))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def shared_lab(tmp_path_factory: pytest.TempPathFactory, lab_cache: Path) -> Iterator[Lab]:
    """One read-mostly lab for the whole session. Tests must leave it as they found it."""
    lab = Lab(tmp_path_factory.mktemp("shared-lab"), BASE + SHARED_OFFSET)
    try:
        lab.up(DEFAULT_DOCS, cache=lab_cache)
        yield lab
    finally:
        lab.down()
        shutil.rmtree(lab.layout.root, ignore_errors=True)


@pytest.fixture
def lab_factory(tmp_path: Path, lab_cache: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """Start fresh labs (restored from the cache when possible); all are stopped at teardown."""
    labs: list[Lab] = []

    def start(docs: int = DEFAULT_DOCS, **kwargs) -> Lab:
        offset = FRESH_OFFSETS[len(labs)]
        lab = Lab(tmp_path / f"lab{len(labs)}", BASE + offset)
        labs.append(lab)
        lab.up(docs, cache=lab_cache, **kwargs)
        return lab

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, lab in enumerate(labs):
        if failed:
            _keep_logs(lab, f"{request.node.name}-lab{i}")
        lab.down()
        # A run starts dozens of labs; CI's disk is shared, so only a failed test's logs outlive it.
        shutil.rmtree(lab.layout.root, ignore_errors=True)


@pytest.fixture
def fresh_lab(lab_factory: Callable[..., Lab]) -> Lab:
    """A lab of its own for a test that changes the cluster."""
    return lab_factory()


# -- netns lab (issue 17): six hosts in network namespaces, reached over SSH ---------------------------------
def netns_unavailable() -> str | None:
    """Why the netns lab cannot run here (None when it can)."""
    from splitter.lab.netns_ssh import find_sshd

    if os.geteuid() != 0:
        return "the netns lab needs root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if find_sshd() is None:
        return "openssh-server (sshd) is not installed"
    return None


def require_netns() -> None:
    """Skip with the reason; under CI=true a missing prerequisite fails the test instead (CI must run them)."""
    reason = netns_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"netns tests cannot run under CI: {reason} (.ci/run installs openssh-server and iproute2)")
    pytest.skip(reason)


NETNS_DOCS = 1000


@pytest.fixture(scope="module")
def netns_lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """One netns lab per test file (files run in parallel workers: --dist loadfile); always taken down. When a
    test of the file failed, the mongod logs, the audit log and the runs' output are kept under test-logs/."""
    require_netns()
    from splitter.lab.netns import NetnsLab

    lab = NetnsLab(tmp_path_factory.mktemp("netns-lab"))
    failed_before = request.session.testsfailed
    try:
        lab.up(NETNS_DOCS)
        yield lab
    finally:
        if request.session.testsfailed > failed_before:
            name = f"{request.node.name.removesuffix('.py')}-netns"
            _keep_logs(lab, name)
            (LOG_KEEP_DIR / name).mkdir(parents=True, exist_ok=True)
            for run_log in lab.layout.root.glob("run-*.log"):
                shutil.copy(run_log, LOG_KEEP_DIR / name)
        lab.down()
        shutil.rmtree(lab.layout.root, ignore_errors=True)
