"""What `splitter status` reports, as one JSON document (`schema_version` 1): every step (state, times, duration,
attempts, last error), who holds the state directory, the gates, the pause file, every catch-up stream, the
cleanup of each set, the split optime, the point of no return, the cutover, the live topology, and what to do next.

Touches: reads the state directory (checkpoint, lock files, gate confirmations, positions, pause file) and asks
the members of both sets for replSetGetStatus (read-only, in parallel, bounded by the connector's timeout).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from splitter.cutover.protocol import possible
from splitter.engine.next_action import NextAction, Situation, next_action
from splitter.errors import SplitterError
from splitter.observe.metrics import live_step_states
from splitter.run_context import StepContext
from splitter.steps.base import Step
from splitter.steps.registry import POINT_OF_NO_RETURN, all_steps
from splitter.store import cleanup_position
from splitter.store.catchup_position import read_status
from splitter.store.checkpoint import RunState
from splitter.store.gatefiles import read_confirmation
from splitter.store.lock import StateLock

SCHEMA_VERSION = 1


def step_gates(steps: Sequence[Step]) -> dict[str, str | None]:
    """Step id -> the gate it waits at (None for most), in run order."""
    return {s.id: s.gate.id if s.gate else None for s in steps}


def seconds_between(started: str | None, finished: str | None, now: datetime | None = None) -> float | None:
    """Seconds from `started` to `finished` (ISO timestamps), or to `now` while it has not finished."""
    if not started:
        return None
    try:
        begin = datetime.fromisoformat(started)
        end = datetime.fromisoformat(finished) if finished else (now or datetime.now(timezone.utc))
    except ValueError:
        return None
    return max((end - begin).total_seconds(), 0.0)


def _steps(state: RunState, steps: Sequence[Step], run_alive: bool) -> list[dict[str, Any]]:
    live = live_step_states(state, step_gates(steps))
    rows = []
    for number, step in enumerate(steps):
        record = state.steps.get(step.id)
        started, finished = (record.started, record.finished) if record else (None, None)
        ongoing = live[step.id] == "running" and run_alive
        rows.append({"number": number, "id": step.id, "title": step.title, "state": live[step.id],
                     "started": started, "finished": finished if live[step.id] == "done" else None,
                     "seconds": seconds_between(started, finished if live[step.id] == "done" else None)
                     if live[step.id] == "done" or ongoing else None,
                     "attempts": record.attempts if record else 0, "error": record.error if record else None,
                     "irreversible": not step.reversible, "gate": step.gate.id if step.gate else None})
    return rows


def _gates(ctx: StepContext, gates: Sequence[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for gate in gates:
        passed = ctx.state.gates.get(gate)
        confirmation = read_confirmation(ctx.files, gate)
        if passed is not None:
            found[gate] = {"state": "passed", "at": passed.at, "by": passed.by}
        elif confirmation is not None:
            found[gate] = {"state": "confirmed", "at": confirmation.get("at"), "by": confirmation.get("by")}
        else:
            found[gate] = {"state": "waiting" if ctx.state.waiting_gate == gate else "pending", "at": None,
                           "by": None}
    return found


def _cleanup(ctx: StepContext) -> dict[str, Any]:
    sets = {}
    for set_name in (ctx.source_name, ctx.target_name):
        positions = cleanup_position.PositionStore(ctx.store.dir, set_name, persist=False).all()
        if not positions:
            continue
        sets[set_name] = {
            "deleted": sum(p.deleted for p in positions), "kept": sum(p.kept_by_interlock for p in positions),
            "done": all(p.done for p in positions), "updated": max(p.updated for p in positions),
            "namespaces": [{"namespace": p.namespace, "deleted": p.deleted, "kept": p.kept_by_interlock,
                            "done": p.done, "batches": p.batches, "updated": p.updated} for p in positions]}
    return sets


def _set_view(ctx: StepContext, host: str) -> tuple[str, dict[str, str]] | None:
    try:
        status = ctx.inspector.status(host)
    except SplitterError:
        return None
    return status.name, status.states()


def topology(ctx: StepContext) -> dict[str, dict[str, str]]:
    """Each replica set as its first member that answers sees it, keyed by the set's own name (asked all at once;
    before the split the moving members still answer for the source set). A set nobody answers for is empty."""
    hosts = ctx.keep_hosts + ctx.move_hosts
    views: list[tuple[str, dict[str, str]] | None] = [None] * len(hosts)

    def ask(index: int) -> None:
        views[index] = _set_view(ctx, hosts[index])

    # Daemon threads, not an executor: Ctrl-C on a watch must not wait for a member that does not answer.
    threads = [threading.Thread(target=ask, args=(i,), name="status-member", daemon=True) for i in range(len(hosts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sets: dict[str, dict[str, str]] = {}
    for view in views:
        if view is not None:
            sets.setdefault(view[0], view[1])
    for name in (ctx.source_name, ctx.target_name):
        sets.setdefault(name, {})
    return sets


def _model(value: Any) -> Any:
    return value.model_dump(mode="json") if value is not None else None


def collect_status(ctx: StepContext, config_arg: str | None = None, *, with_topology: bool = True) -> dict[str, Any]:
    """The whole report. `config_arg` is the `-c` value as the operator typed it (for the commands shown);
    without `with_topology` the cluster is not asked (`topology` is None: the watch asks it in the background)."""
    steps = all_steps()
    state = ctx.state
    run_lock = StateLock(ctx.store.dir, "run").held()
    cleanup_lock = StateLock(ctx.store.dir, "cleanup").held()
    rows = _steps(state, steps, run_alive=run_lock is not None)
    gates = _gates(ctx, [g for g in step_gates(steps).values() if g])
    cleanup = _cleanup(ctx)
    situation = Situation(
        config=config_arg or str(ctx.config.config_path), steps=tuple((r["id"], r["state"]) for r in rows),
        errors={r["id"]: r["error"] for r in rows if r["error"]}, run_holder=run_lock, cleanup_holder=cleanup_lock,
        waiting_gate=state.waiting_gate, confirmed_gates=frozenset(g for g, v in gates.items()
                                                                   if v["state"] == "confirmed"),
        point_of_no_return=state.point_of_no_return is not None,
        cutover_state=state.cutover.state if state.cutover else None,
        cutover_epoch=state.cutover.epoch if state.cutover else None, target=ctx.target_name,
        cutover_possible=possible(state.cutover, ctx.source_name, ctx.target_name),
        cleanup_done=len(cleanup) == 2 and all(s["done"] for s in cleanup.values()), paused=ctx.files.pause.exists())
    action: NextAction = next_action(situation)
    return {
        "schema_version": SCHEMA_VERSION,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": str(ctx.config.config_path),
        "source_set": ctx.source_name,
        "target_set": ctx.target_name,
        "state_dir": str(ctx.store.dir),
        "run": {"alive": run_lock is not None, "holder": run_lock},
        "cleanup_run": {"alive": cleanup_lock is not None, "holder": cleanup_lock},
        "steps": rows,
        "waiting_gate": state.waiting_gate,
        "gates": gates,
        "pause_file": {"path": str(ctx.files.pause), "present": ctx.files.pause.exists()},
        "split_optime": _model(state.split.optime) if state.split else None,
        "point_of_no_return": _model(state.point_of_no_return),
        "point_of_no_return_step": POINT_OF_NO_RETURN,
        "cutover": _model(state.cutover),
        "cutover_possible": list(possible(state.cutover, ctx.source_name, ctx.target_name)),
        "catch_up": read_status(ctx.store.dir, ctx.target_name),
        "catch_up_streams": {s: read_status(ctx.store.dir, s) for s in ctx.files.catchup_streams()},
        "cleanup": cleanup,
        "next": {"sentence": action.sentence, "command": action.command},
        "topology": topology(ctx) if with_topology else None,
    }
