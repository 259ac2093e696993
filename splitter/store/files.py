"""Every file splitter keeps in a state directory, by name. Nothing else in the code builds a state-dir path.

The state directory (split.yaml's `state_dir`, mode 0700) holds, with the module that reads and writes it:

    state.json                    checkpoint: steps and their typed records       checkpoint.py, records.py
    audit.jsonl                   every event of every command, a JSON line each  audit.py
    run.lock, cleanup.lock        who holds the directory (flock)                 lock.py
    gates/<gate>.confirmed        `confirm GATE`, taken when the run passes it    gatefiles.py
    requests/<verb>.json          `switch|reverse|finalize` for a running `run`   gatefiles.py
    catchup-<stream>.json         a change stream's resume position, counters     catchup_position.py
    cleanup/<set>/<db.coll>.json  a set's cleanup of one collection               cleanup_position.py
    cleanup.pause                 present: running cleanups wait                  (cleanup only reads it)
    verify/<run>.json             finished ranges of a verification (resume)      (verify)
    hooks.log                     what the hooks printed                          (hooks)
    ansible/                      ansible-runner's private data dir               (hosts)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) owner-only; returns it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class StateFiles:
    """The paths of one state directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def ensure(self) -> Path:
        return ensure_private_dir(self.root)

    # -- the run --------------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        return self.root / "state.json"

    def rolled_back_checkpoint(self, stamp: int) -> Path:
        return self.root / f"state.rolled-back.{stamp}.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit.jsonl"

    def lock(self, name: str) -> Path:
        return self.root / f"{name}.lock"

    @property
    def gates_dir(self) -> Path:
        return self.root / "gates"

    def gate_confirmation(self, gate_id: str) -> Path:
        return self.gates_dir / f"{gate_id}.confirmed"

    @property
    def requests_dir(self) -> Path:
        return self.root / "requests"

    def request(self, verb: str) -> Path:
        return self.requests_dir / f"{verb}.json"

    # -- streams, cleanup, verify ---------------------------------------------------------------------
    def catchup_position(self, stream: str) -> Path:
        return self.root / f"catchup-{stream}.json"

    def catchup_streams(self) -> list[str]:
        """The streams that have a position file, by name."""
        return sorted(p.name.removeprefix("catchup-").removesuffix(".json") for p in self.root.glob("catchup-*.json"))

    def cleanup_dir(self, set_name: str) -> Path:
        return self.root / "cleanup" / set_name

    def cleanup_position(self, set_name: str, namespace: str) -> Path:
        return self.cleanup_dir(set_name) / f"{quote(namespace, safe='.-_')}.json"

    @property
    def pause(self) -> Path:
        return self.root / "cleanup.pause"

    @property
    def verify_dir(self) -> Path:
        return self.root / "verify"

    def verify_progress(self, run_id: str) -> Path:
        return self.verify_dir / f"{run_id}.json"

    @property
    def hooks_log(self) -> Path:
        return self.root / "hooks.log"

    @property
    def ansible_dir(self) -> Path:
        return self.root / "ansible"
