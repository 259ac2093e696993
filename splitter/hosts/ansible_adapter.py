"""The one module that imports ansible_runner: builds the params, runs a playbook, maps the outcome."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from splitter.errors import HostActionFailed


def find_playbook_dir() -> Path:
    """The playbooks shipped in the installed package (splitter/playbooks, copied there by the wheel build),
    else the source checkout's top-level playbooks/ (an editable install runs from the checkout)."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "playbooks"
    return shipped if (shipped / "mongod_start.yml").is_file() else package.parent / "playbooks"


PLAYBOOK_DIR = find_playbook_dir()


@dataclass(frozen=True)
class PlaybookResult:
    """What one playbook run did, per host; never derived from stdout."""

    playbook: str
    hosts: tuple[str, ...]
    status: str
    rc: int
    seconds: float
    changed: tuple[str, ...] = ()
    failures: Mapping[str, str] = field(default_factory=dict)
    # host -> task name -> the module's result, for the tasks named "Report ..." (what a read-only playbook
    # returns, e.g. a slurped file); taken from the runner's events, never from stdout.
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def _failure_messages(runner: Any) -> dict[str, str]:
    failures: dict[str, str] = {}
    for event in runner.events:
        if event.get("event") not in ("runner_on_failed", "runner_on_unreachable"):
            continue
        data = event.get("event_data", {})
        res = data.get("res", {}) or {}
        text = str(res.get("msg") or "failed").strip()
        detail = str(res.get("stderr") or "").strip().splitlines()
        if detail:
            text = f"{text} ({detail[-1][-400:]})"
        failures[data.get("host", "?")] = f"{data.get('task', '?')}: {text}"
    return failures


def _reported(runner: Any) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}
    for event in runner.events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and str(data.get("task", "")).startswith("Report "):
            outputs.setdefault(data.get("host", "?"), {})[data["task"]] = dict(data.get("res") or {})
    return outputs


def _changed_hosts(runner: Any) -> tuple[str, ...]:
    stats = runner.stats or {}
    return tuple(sorted((stats.get("changed") or {}).keys()))


class AnsibleAdapter:
    """Runs playbooks from playbooks/ against an inventory file; artifacts go under work_dir."""

    def __init__(self, inventory: Path, work_dir: Path, playbook_dir: Path = PLAYBOOK_DIR) -> None:
        self.inventory = Path(inventory).resolve()
        self.work_dir = Path(work_dir).resolve()
        self.playbook_dir = playbook_dir

    def _envvars(self) -> dict[str, str]:
        # ansible-runner spawns ansible-playbook by name; the venv's bin dir may not be on PATH.
        # Host-key checking is left to the operator's Ansible configuration (ansible.cfg, ANSIBLE_* variables).
        bin_dir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_LOCAL_TEMP": str(self.work_dir / "tmp"),
            "ANSIBLE_HOME": str(self.work_dir / "home"),
        }

    def run(self, playbook: str, hosts: Sequence[str], extravars: Mapping[str, Any] | None = None,
            *, check_failed: bool = True) -> PlaybookResult:
        path = self.playbook_dir / playbook
        if not path.is_file():
            raise HostActionFailed(f"playbook {playbook} not found in {self.playbook_dir}")
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        started = time.monotonic()
        # ansible_runner replaces SIGINT/SIGTERM with handlers that only set a flag; keep ours (Ctrl-C = stop).
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            runner = ansible_runner.run(
                private_data_dir=str(self.work_dir),
                playbook=str(path),
                inventory=str(self.inventory),
                limit=",".join(hosts),
                extravars=dict(extravars or {}),
                envvars=self._envvars(),
                quiet=True,
                rotate_artifacts=20,
            )
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if runner.status == "canceled":
            raise KeyboardInterrupt
        result = PlaybookResult(
            playbook=playbook,
            hosts=tuple(hosts),
            status=str(runner.status),
            rc=int(runner.rc if runner.rc is not None else -1),
            seconds=round(time.monotonic() - started, 3),
            changed=_changed_hosts(runner),
            failures=_failure_messages(runner),
            outputs=_reported(runner),
        )
        if check_failed and not result.ok:
            detail = "; ".join(f"{h}: {m}" for h, m in result.failures.items()) or f"status {result.status}"
            raise HostActionFailed(f"playbook {playbook} failed on {','.join(hosts)}: {detail}")
        return result
