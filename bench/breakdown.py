"""Where a split's time goes: waiting on mongod, Ansible's own cost per playbook, and the orchestrator's own time.

Pure: it reads what the split's events recorded (bench/common.py: `SplitRun`): the applier's `action` events, the
finished waits, the read-only host checks and each step's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.measure import ratio

# -- classification and sums -------------------------------------------------------------------------------
CATCHUP_STEPS = ("catch-up", "deploy-client-v2")
MONGOD_PARTS = ("startup", "shutdown", "elections", "secondary_catchup", "reconfig_and_commands", "dbpath_prep",
                "other_waits")


def classify_action(action: str) -> str:
    """An applier action (its `what`) -> the part of mongod's time it stands for."""
    if action.startswith("playbook mongod_start"):
        return "startup"
    if action.startswith("playbook mongod_stop") or action == "shutdown":
        return "shutdown"
    if action.startswith("playbook prepare_dbpath"):
        return "dbpath_prep"
    return "reconfig_and_commands"


def classify_wait(what: str) -> str:
    text = what.lower()
    if "catch up" in text or "caught up" in text or "optime" in text:
        return "secondary_catchup"
    if "primary" in text or "arbiter" in text or "secondary" in text:
        return "elections"
    return "other_waits"


def breakdown(wall: float, audit: Sequence[dict[str, Any]], waits: Sequence[dict[str, Any]],
              checks: Sequence[dict[str, Any]], ansible_fixed: float,
              steps: dict[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """Split the wall time into waiting on mongod, Ansible's own per-playbook cost and the orchestrator's own
    time (everything else: preflight and verify reads, checkpoints, Python).

    Audited playbooks count as mongod time minus `ansible_fixed` (a no-op playbook's time on this machine);
    un-audited playbooks (`checks`: preflight's reachability check, verify's dbpath checks) count as Ansible.
    """
    parts = dict.fromkeys(MONGOD_PARTS, 0.0)
    ansible = 0.0
    per_step: dict[str, dict[str, float]] = {}

    def add(step: str | None, key: str, seconds: float) -> None:
        slot = per_step.setdefault(step or "?", {"mongod_s": 0.0, "ansible_s": 0.0})
        slot[key] += seconds

    playbooks = 0
    for entry in audit:
        seconds = float(entry.get("seconds") or 0.0)
        action = str(entry.get("what", ""))
        if action.startswith("playbook "):
            playbooks += 1
            fixed = min(ansible_fixed, seconds)
            ansible += fixed
            add(entry.get("step"), "ansible_s", fixed)
            seconds -= fixed
        parts[classify_action(action)] += seconds
        add(entry.get("step"), "mongod_s", seconds)
    for wait in waits:
        parts[classify_wait(str(wait.get("what", "")))] += wait["seconds"]
        add(wait.get("step"), "mongod_s", wait["seconds"])
    for check in checks:
        playbooks += 1
        ansible += check["seconds"]
        add(check.get("step"), "ansible_s", check["seconds"])
    mongod = sum(parts.values())
    own = max(wall - mongod - ansible, 0.0)
    step_table: dict[str, dict[str, float]] = {}
    for step, (start, end) in (steps or {}).items():
        slot = per_step.get(step, {"mongod_s": 0.0, "ansible_s": 0.0})
        length = end - start
        step_table[step] = {"wall_s": round(length, 2), "mongod_s": round(slot["mongod_s"], 2),
                            "ansible_s": round(slot["ansible_s"], 2),
                            "own_s": round(max(length - slot["mongod_s"] - slot["ansible_s"], 0.0), 2)}
    return {
        "wall_s": round(wall, 2),
        "waiting_on_mongod_s": round(mongod, 2),
        "ansible_s": round(ansible, 2),
        "orchestrator_own_s": round(own, 2),
        # of which the catch-up and the cutover's drain + verify (the tool's own reads and writes)
        "catchup_and_verify_s": round(sum(step_table.get(s, {}).get("own_s", 0.0) for s in CATCHUP_STEPS), 2),
        "waiting_on_mongod_fraction": ratio(mongod, wall),
        "orchestrator_fraction": ratio(ansible + own, wall),
        "mongod": {f"{k}_s": round(v, 2) for k, v in parts.items()},
        "playbooks": playbooks,
        "ansible_fixed_per_playbook_s": round(ansible_fixed, 2),
        "steps": step_table,
    }
