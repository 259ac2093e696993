"""Reverse and switch again on real mongod under the lab application, then cleanup: rs2's users go back to rs1
without loss, the requests that are not possible are refused, and cleanup (with --remove-orphans) leaves each set
its half."""

from __future__ import annotations

import pytest

from splitter.lab.lab import Lab
from tests.cutover_driver import (
    Run,
    app_for,
    check_app,
    cli,
    confirm,
    finish,
    until_catch_up,
    wait_for,
    wait_gate,
    wait_switch,
)
from tests.helpers import rs1_client

# A whole split under the application: minutes on a loaded machine (the suite's default is 900 s per test).
pytestmark = [pytest.mark.mongod, pytest.mark.timeout(2700)]


def test_reverse_round_trip_then_cleanup(fresh_lab: Lab) -> None:
    config = str(fresh_lab.layout.config_path)
    until_catch_up(fresh_lab)
    app = app_for(fresh_lab).start()
    run = Run(config)
    try:
        wait_gate(fresh_lab, run=run)
        confirm(config)
        wait_switch(fresh_lab, "verified", 2, run)
        refused = cli("cleanup", "-c", config, "--set", "both")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert cli("switch", "-c", config).returncode == 2  # not possible now: nothing was reversed
        assert cli("reverse", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 3, run)
        moved = app.acknowledged
        wait_for("writes of rs2's users on rs1 again", lambda: app.acknowledged > moved + 100)
        with app._lock:
            recent = [op for op in app.ops[moved:] if op.user % 2 == 1]
        assert recent and all(op.acked_by == "rs1" for op in recent[-10:])
        assert cli("finalize", "-c", config).returncode == 2  # not while reversed
        assert cli("switch", "-c", config).returncode == 0
        wait_switch(fresh_lab, "verified", 4, run)
        finish(fresh_lab, run)
    finally:
        app.stop()
        run.kill()
    check_app(app)
    result = cli("cleanup", "-c", config, "--set", "both")
    assert result.returncode == 0, result.stdout + result.stderr
    check_app(app)
    # What the app deleted on rs2 after finalize is still on rs1 (nothing replays it back any more): the
    # interlock keeps it (missing on the other set) until --remove-orphans, which deletes it safely.
    result = cli("cleanup", "-c", config, "--set", "both", "--remove-orphans")
    assert result.returncode == 0, result.stdout + result.stderr
    check_app(app)
    assert rs1_client(fresh_lab).app.ledger.count_documents({"user_id": {"$mod": [2, 1]}}) == 0
