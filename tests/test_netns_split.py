"""The full split over SSH on the netns lab: six hosts in their own network namespaces, mongod on 27017, every
host action through sshd; gates confirmed with `splitter confirm` under a writer; topology read from each host's
own address, both halves, 0 lost writes."""

from __future__ import annotations

import pytest

from splitter.lab.lab import Lab
from splitter.lab.layout import ARBITERS, DATA_NODES
from tests.helpers import run_cli
from tests.netns_run import assert_halves, assert_topology_from_each_host, split_with_gates

pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]  # a split over SSH takes minutes on a busy box

def test_full_split_over_ssh_with_confirm_at_each_gate(netns_lab: Lab) -> None:
    inventory = netns_lab.layout.inventory_path.read_text()
    assert "ansible_connection: ssh" in inventory and "splitter_lab: true" in inventory
    writer, run = split_with_gates(netns_lab)
    assert "split complete" in run.output
    assert writer.failures == [], writer.failures[:5]
    assert_topology_from_each_host(netns_lab)
    assert_halves(netns_lab, writer)
    # Each mongod runs inside its host's namespace: it was started there over SSH.
    for name in DATA_NODES + ARBITERS:
        pids = netns_lab.plan.namespace_pids(name)
        assert any(p.pid in pids for p in netns_lab.processes() if p.name == name and p.pid), name
    verify = run_cli("verify", "-c", str(netns_lab.layout.config_path), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
