"""Gates: points where the operator changes the application. Confirmed by file, command, or --yes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from splitter.config import Gate, parse_duration
from splitter.cutover.switch import is_lab
from splitter.events import EventType
from splitter.run_context import StepContext
from splitter.steps.base import GateSpec
from splitter.store import gatefiles
from splitter.store.atomic import now_iso
from splitter.store.checkpoint import RunState
from splitter.store.records import GatePass

GATE_IDS = ("deploy-client-v1", "deploy-client-v2")


def confirm_refusal(state: RunState, run_holder: dict[str, Any] | None, gate_id: str) -> str | None:
    """Why `splitter confirm GATE` must not be taken now, or None. A confirmation is only accepted while a live
    `splitter run` waits at that very gate (gh-ost refuses `unpostpone` unless it is postponing): a stray one
    would otherwise let a later run pass the gate at once."""
    if gate_id in state.gates:
        return f"gate {gate_id} was already passed ({state.gates[gate_id].by} at {state.gates[gate_id].at})"
    if run_holder is None:
        waiting = f"; the last run stopped while waiting at {state.waiting_gate}" if state.waiting_gate else ""
        return f"no `splitter run` is running for this state dir{waiting}, so no gate is waiting"
    if state.waiting_gate is None:
        return f"`splitter run` (pid {run_holder.get('pid', '?')}) is not waiting at a gate now"
    if state.waiting_gate != gate_id:
        return f"`splitter run` is waiting at {state.waiting_gate}, not at {gate_id}"
    return None


class GateKeeper:
    """Waits at a gate until it is confirmed; `tick` runs between polls (e.g. to drive the catch-up)."""

    def __init__(self, ctx: StepContext, auto_yes: bool) -> None:
        self.ctx = ctx
        self.auto_yes = auto_yes

    def _gate_config(self, gate_id: str) -> Gate:
        gates = self.ctx.config.gates
        return gates.deploy_client_v1 if gate_id == "deploy-client-v1" else gates.deploy_client_v2

    def instruction(self, spec: GateSpec) -> str:
        return spec.instruction.format(keep=",".join(self.ctx.keep_hosts), move=", ".join(self.ctx.move_hosts),
                                       source=self.ctx.source_name, target=self.ctx.target_name,
                                       routing=self.ctx.config.routing.describe())

    def _auto(self, gate_id: str) -> bool:
        """--yes passes the cutover's gate only on the lab inventory or with --yes-cutover (issue 13)."""
        return self.auto_yes and (gate_id != "deploy-client-v2" or self.ctx.yes_cutover or is_lab(self.ctx))

    def _confirmed_by(self, gate_id: str, command: str | None) -> str | None:
        if self._auto(gate_id):
            return "--yes"
        confirmation = gatefiles.read_confirmation(self.ctx.files, gate_id)
        if confirmation is not None:
            return f"splitter confirm ({confirmation.get('by', '?')})"
        if command:
            done = subprocess.run(command, shell=True, capture_output=True, timeout=300, check=False)
            if done.returncode == 0:
                return f"command: {command}"
        return None

    def wait(self, spec: GateSpec, tick: Callable[[], None] | None = None) -> None:
        if spec.id in self.ctx.state.gates:
            return
        gate = self._gate_config(spec.id)
        poll = parse_duration(gate.poll)
        self.ctx.state.waiting_gate = spec.id
        self.ctx.save()
        confirm = f"when done: splitter confirm -c {self.ctx.config.config_path} {spec.id}"
        hint = None if self._auto(spec.id) else (confirm + (f"   (or the gate command `{gate.command}` succeeds)"
                                                            if gate.command else ""))
        self.ctx.events.emit(EventType.GATE_WAITING, f"GATE {spec.id}: {self.instruction(spec)}", gate=spec.id,
                             instruction=self.instruction(spec), hint=hint)
        if hint:
            self.ctx.progress(f"  {hint}")
        while (by := self._confirmed_by(spec.id, gate.command)) is None:
            if tick:
                tick()
            time.sleep(poll)
        # A confirmation is used once: it never carries over to a later wait at this gate.
        gatefiles.consume_confirmation(self.ctx.files, spec.id)
        self.ctx.state.gates[spec.id] = GatePass(at=now_iso(), by=by)
        self.ctx.state.waiting_gate = None
        self.ctx.save()
        self.ctx.events.emit(EventType.GATE_CONFIRMED, f"gate {spec.id} confirmed ({by})", gate=spec.id, by=by)
