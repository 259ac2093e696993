"""What the operator can do next, decided from what `status` sees: a pure function returning the sentence `status`
prints (and the unit tests assert) and the command to run, if any."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Situation:
    """The facts the decision needs (collected by engine/status.py)."""

    config: str                                   # the -c value for the commands shown
    steps: tuple[tuple[str, str], ...]            # (step id, live state) in run order
    errors: Mapping[str, str] = field(default_factory=dict)
    run_holder: Mapping[str, Any] | None = None   # who holds run.lock (a live process), else None
    cleanup_holder: Mapping[str, Any] | None = None
    waiting_gate: str | None = None
    confirmed_gates: frozenset[str] = frozenset()  # confirmations written and not yet taken by a run
    point_of_no_return: bool = False
    cutover_state: str | None = None
    cutover_epoch: int | None = None
    cutover_possible: tuple[str, ...] = ()        # switch / reverse / finalize, as far as the checkpoint says
    target: str = "rs2"
    cleanup_done: bool = False
    paused: bool = False


@dataclass(frozen=True)
class NextAction:
    sentence: str
    command: str | None = None


def _holder(holder: Mapping[str, Any]) -> str:
    return f"`{holder.get('command', 'splitter')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"


def _first(situation: Situation, *states: str) -> str | None:
    return next((step for step, state in situation.steps if state in states), None)


def next_action(situation: Situation) -> NextAction:
    """The one thing to do now, most urgent first: a live run's gate, a live process, a failure, a stopped run,
    then the way forward (plan, run, cleanup)."""
    run = f"splitter run -c {situation.config}"
    watch = f"splitter status -c {situation.config} --watch"
    gate = situation.waiting_gate
    if situation.run_holder is not None:
        return _while_running(situation, run, watch)
    if situation.cleanup_holder is not None:
        paused = " (paused: the pause file exists)" if situation.paused else ""
        return NextAction(f"a cleanup is running{paused}: {_holder(situation.cleanup_holder)}; watch it", watch)
    if failed := _first(situation, "failed"):
        error = situation.errors.get(failed, "see the error above")
        return NextAction(f"step {failed} failed: {error}; fix the cause, then resume: the run re-verifies {failed} "
                          "first", run)
    if stopped := _first(situation, "running"):
        return NextAction(f"a run stopped during {stopped} (no process holds the state directory); resume it: it "
                          f"re-verifies {stopped} and continues", run)
    if gate and gate in situation.confirmed_gates:
        return NextAction(f"gate {gate} is confirmed but no run is waiting; start the run to pass it", run)
    if gate:
        return NextAction(f"the run stopped while waiting at gate {gate}; start it again, and confirm once the "
                          "application change is live", run)
    if all(state == "pending" for _, state in situation.steps):
        return NextAction("nothing has run yet: read the plan (read-only), then run it", f"splitter plan -c "
                          f"{situation.config}")
    if pending := _first(situation, "pending", "waiting"):
        done = [step for step, state in situation.steps if state == "done"]
        back = "" if situation.point_of_no_return else " (or undo it with `splitter rollback`, possible until " \
                                                       "rewrite-replset-config)"
        return NextAction(f"stopped after {done[-1] if done else 'nothing'}; the next step is {pending}{back}", run)
    return _after_the_steps(situation)


def _while_running(situation: Situation, run: str, watch: str) -> NextAction:
    assert situation.run_holder is not None
    who = _holder(situation.run_holder)
    gate = situation.waiting_gate
    if gate and gate in situation.confirmed_gates:
        return NextAction(f"gate {gate} is confirmed; {who} takes it at its next poll", watch)
    if gate:
        return NextAction(f"{who} waits at gate {gate}: make the application change it asks for, then confirm it",
                          f"splitter confirm -c {situation.config} {gate}")
    working = _first(situation, "running")
    if situation.cutover_possible:
        verbs = situation.cutover_possible
        return NextAction(f"{who} keeps the way back running: the traffic of {situation.target}'s half is "
                          f"{situation.cutover_state} (epoch {situation.cutover_epoch}); possible now: "
                          f"{', '.join(verbs)} (finalize closes the way back; cleanup waits for it)",
                          f"splitter {verbs[-1]} -c {situation.config}")
    return NextAction(f"{who} is working on {working or 'the split'}; nothing to do but watch", watch)


def _after_the_steps(situation: Situation) -> NextAction:
    config = situation.config
    if situation.cutover_state is None:
        return NextAction("every step is done but no cutover is recorded; compare the halves", f"splitter verify -c "
                          f"{config}")
    if situation.cutover_state != "final":
        verbs = ", ".join(situation.cutover_possible) or "none until a run finishes the switch in progress"
        return NextAction(f"the traffic of {situation.target}'s half is {situation.cutover_state} (epoch "
                          f"{situation.cutover_epoch}); possible now: {verbs}; finalize once you will not switch "
                          "back (cleanup waits for it)", f"splitter finalize -c {config}")
    if situation.cleanup_done:
        return NextAction("the split is complete and both sets are cleaned up; nothing left to do")
    return NextAction("the split is complete: delete each set's other half, throttled, in a quiet window (it "
                      "resumes where it stopped)", f"splitter cleanup -c {config} --set both --window 01:00-05:00")
