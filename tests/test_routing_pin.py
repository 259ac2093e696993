"""The routing is pinned once preflight passed at the first `run`: a split.yaml whose routing changed afterwards
is refused by every command with exit 2, naming the changed field, and nothing is touched (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from splitter.lab.lab import Lab
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles
from tests.helpers import config_copy, run_cli


@pytest.mark.mongod
def test_a_routing_changed_after_the_first_run_is_refused_by_every_command(shared_lab: Lab, tmp_path: Path) -> None:
    config = config_copy(shared_lab, tmp_path)
    files = StateFiles(tmp_path / "state")
    # A run that preflight refuses pins nothing: the operator must be able to fix split.yaml and run again.
    refused = yaml.safe_load(config.read_text())
    refused["planning"] = {"min_free_disk_fraction": 0.999, "min_free_disk_vs_data": 1_000_000_000}
    config.write_text(yaml.safe_dump(refused))
    result = run_cli("run", "-c", str(config), "--until", "preflight")
    assert result.returncode == 2, result.stdout + result.stderr
    assert StateStore(files).load().routing_pin is None

    config = config_copy(shared_lab, tmp_path)
    first = run_cli("run", "-c", str(config), "--until", "preflight")  # read-only step; pins the routing
    assert first.returncode == 0, first.stdout + first.stderr
    pinned = StateStore(files).load().routing_pin
    assert pinned and pinned["modulus"] == 2

    changed = yaml.safe_load(config.read_text())
    changed["routing"]["exclude"] = ["app.sessions"]  # an innocent-looking edit: sessions would never be cleaned
    config.write_text(yaml.safe_dump(changed))
    before = StateStore(files).load().model_dump()
    for command in (["run"], ["verify"], ["cleanup", "--set", "both"], ["status"], ["plan"]):
        result = run_cli(*command, "-c", str(config))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        message = " ".join(result.stderr.split())
        assert "routing.exclude: pinned [], split.yaml now says ['app.sessions']" in message, (command, message)
        assert "Traceback" not in result.stderr
    assert StateStore(files).load().model_dump() == before
