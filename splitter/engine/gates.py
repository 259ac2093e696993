"""Gates: points where the operator changes the application. Confirmed by file, command, or --yes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from splitter.config import Gate, parse_duration
from splitter.engine.state import atomic_write_json, ensure_state_dir, now_iso
from splitter.steps.base import GateSpec
from splitter.steps.context import StepContext

GATE_IDS = ("deploy-client-v1", "deploy-client-v2")


def confirmation_file(state_dir: Path, gate_id: str) -> Path:
    return Path(state_dir) / "gates" / f"{gate_id}.confirmed"


def confirm_gate(state_dir: Path, gate_id: str, by: str) -> Path:
    """What `splitter confirm` does: drop a file the waiting run picks up."""
    path = confirmation_file(state_dir, gate_id)
    ensure_state_dir(path.parent)
    atomic_write_json(path, {"gate": gate_id, "at": now_iso(), "by": by})
    return path


class GateKeeper:
    """Waits at a gate until it is confirmed; `tick` runs between polls (e.g. to drive the catch-up)."""

    def __init__(self, ctx: StepContext, auto_yes: bool) -> None:
        self.ctx = ctx
        self.auto_yes = auto_yes

    def _gate_config(self, gate_id: str) -> Gate:
        gates = self.ctx.config.gates
        return gates.deploy_client_v1 if gate_id == "deploy-client-v1" else gates.deploy_client_v2

    def instruction(self, spec: GateSpec) -> str:
        routing = self.ctx.config.routing
        rule = ", ".join(f"{key} % {routing.modulus} == {r} -> {name}" for name, r in routing.remainders.items()
                         for key in [routing.default_key])
        return spec.instruction.format(keep=",".join(self.ctx.keep_hosts), move=", ".join(self.ctx.move_hosts),
                                       source=self.ctx.source_name, target=self.ctx.target_name, routing=rule)

    def _confirmed_by(self, gate_id: str, command: str | None) -> str | None:
        if self.auto_yes:
            return "--yes"
        if confirmation_file(self.ctx.store.dir, gate_id).exists():
            return "splitter confirm"
        if command:
            done = subprocess.run(command, shell=True, capture_output=True, timeout=300, check=False)
            if done.returncode == 0:
                return f"command: {command}"
        return None

    def wait(self, spec: GateSpec, tick: Callable[[], None] | None = None) -> None:
        gates = self.ctx.state.data.setdefault("gates", {})
        if spec.id in gates:
            return
        gate = self._gate_config(spec.id)
        poll = parse_duration(gate.poll)
        self.ctx.state.waiting_gate = spec.id
        self.ctx.save()
        self.ctx.progress(f"GATE {spec.id}: {self.instruction(spec)}")
        if not self.auto_yes:
            self.ctx.progress(f"  when done: splitter confirm -c {self.ctx.config.config_path} {spec.id}"
                              + (f"   (or the gate command `{gate.command}` succeeds)" if gate.command else ""))
        while (by := self._confirmed_by(spec.id, gate.command)) is None:
            if tick:
                tick()
            time.sleep(poll)
        gates[spec.id] = {"at": now_iso(), "by": by}
        self.ctx.state.waiting_gate = None
        self.ctx.save()
        self.ctx.progress(f"gate {spec.id} confirmed ({by})")
