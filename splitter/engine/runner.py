"""Drives the steps in order from the checkpoint: precheck, gate, apply, verify, checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable

from splitter.engine.gates import GateKeeper
from splitter.errors import BadInput, Interrupted, SplitterError, StepFailed
from splitter.events import EventType
from splitter.run_context import StepContext
from splitter.steps.base import Step
from splitter.store.atomic import now_iso


class Runner:
    """Runs steps; a step is checkpointed `done` only after its verify() passed."""

    def __init__(self, ctx: StepContext, steps: list[Step], gatekeeper: GateKeeper, *, until: str | None = None,
                 ask: Callable[[Step], bool] | None = None) -> None:
        self.ctx = ctx
        self.steps = steps
        self.gatekeeper = gatekeeper
        self.until = until
        self.ask = ask

    def _next_command(self) -> str:
        return f"splitter run -c {self.ctx.config.config_path}"

    def run(self) -> list[str]:
        """Returns the ids of the steps completed in this call."""
        completed = []
        for step in self.steps:
            record = self.ctx.state.step(step.id)
            if record.state != "done":
                if self.ask and not self.ask(step):
                    raise Interrupted(f"stopped before {step.id} as asked", hint=self._next_command())
                self._run_step(step)
                completed.append(step.id)
            if self.until == step.id:
                break
        return completed

    def _already_done(self, step: Step) -> bool:
        try:
            step.verify(self.ctx)
            return True
        except (SplitterError, Exception):
            return False

    def _run_step(self, step: Step) -> None:
        with self.ctx.events.in_step(step.id):
            self._run_step_in_scope(step)

    def _run_step_in_scope(self, step: Step) -> None:
        events = self.ctx.events
        record = self.ctx.state.step(step.id)
        resumed = record.state in ("running", "failed")
        started = time.monotonic()
        events.emit(EventType.STEP_STARTED, f"[{step.id}] {step.title}" + (" (resuming: re-verifying)" if resumed
                                                                             else ""), resumed=resumed,
                    title=step.title)
        try:
            if resumed and self._already_done(step):
                events.progress(f"[{step.id}] already complete")
            else:
                step.precheck(self.ctx)
                if step.gate:
                    self.gatekeeper.wait(step.gate, tick=self.gate_tick(step))
                record.state, record.started, record.error = "running", now_iso(), None
                record.attempts += 1
                self.ctx.save()
                step.apply(self.ctx)
                step.verify(self.ctx)
        except KeyboardInterrupt:
            record.error = "interrupted (Ctrl-C)"
            self.ctx.save()
            raise
        except BadInput as exc:
            record.error = exc.message
            self.ctx.save()
            raise
        except SplitterError as exc:
            record.state, record.error = "failed", exc.message
            self.ctx.save()
            message = exc.message.removeprefix(f"step {step.id}: ")
            failure = StepFailed(step.id, message, hint=exc.hint or (
                f"fix the cause, then `{self._next_command()}` (it re-verifies {step.id} and continues); "
                f"`splitter status -c {self.ctx.config.config_path}` shows where it stands"))
            self._failed(failure)
            raise failure from exc
        except Exception as exc:  # an unexpected error still leaves a consistent checkpoint
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            self.ctx.save()
            failure = StepFailed(step.id, record.error, hint=f"then `{self._next_command()}`")
            self._failed(failure)
            raise failure from exc
        record.state, record.finished, record.error = "done", now_iso(), None
        self.ctx.save()
        events.emit(EventType.STEP_DONE, f"[{step.id}] done", seconds=round(time.monotonic() - started, 3),
                    attempts=record.attempts)

    def _failed(self, failure: StepFailed) -> None:
        self.ctx.events.emit(EventType.STEP_FAILED, failure.message, level="error", error=failure.message,
                             hint=failure.hint)

    def gate_tick(self, step: Step) -> Callable[[], None] | None:
        tick = getattr(step, "gate_tick", None)
        return (lambda: tick(self.ctx)) if tick else None

