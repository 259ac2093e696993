"""Issue 14 item 10: `run` and `rollback` read the state only once they hold the lock. A run that passed the point
of no return while `rollback` was starting must make that rollback refuse, not roll back from a stale state."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from splitter.cli import _register, cli
from splitter.lab.layout import LabLayout
from splitter.store.atomic import now_iso
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.files import StateFiles
from splitter.store.lock import StateLock
from splitter.store.records import MemberRecord, OriginalConfig, PointOfNoReturn


def test_rollback_reads_the_state_under_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = LabLayout(tmp_path, 20900)  # never started: the command must stop before any connection
    layout.write_files(Path("/bin/true"))
    store = StateStore(StateFiles(tmp_path / "state"))
    before = RunState(original_config=OriginalConfig(version=1, members=(MemberRecord(id=0, host="h:1"),)))
    store.save(before)
    acquire = StateLock.acquire

    def another_run_finishes_first(self: StateLock, command: str) -> None:
        # The run that held the lock saved the point of no return just before releasing it.
        store.save(before.model_copy(update={"point_of_no_return": PointOfNoReturn(
            step="rewrite-replset-config", at=now_iso(), detail="writing rs2's config")}))
        acquire(self, command)

    monkeypatch.setattr(StateLock, "acquire", another_run_finishes_first)
    _register()
    result = CliRunner().invoke(cli, ["rollback", "-c", str(layout.config_path)], standalone_mode=False)
    assert "rollback refused: the point of no return was passed" in str(result.exception), result.output
