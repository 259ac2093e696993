"""The cutover protocol (Vitess SwitchTraffic / mongosync commit, for a key-based split), phase by phase.

A switch of the moving half (the target's residues) from its owner `old` to `new`:

    0. close     unfenced, drain the stream old -> new until a pass to `old`'s last write takes at most
                 gates.fence_max_lag (the fence below then holds the half's writes about that long); give up,
                 nothing fenced, after gates.fence_max_wait
    1. fence     publish `fenced: true` (apps hold writes of the half), put the fence up on `old` (fence.py),
                 raise the snapshot history window; checkpoint the fence optime
    2. drain     drain the stream old -> new to `old`'s last write after the fence, then stop it; checkpoint
                 the drain point. The stream never writes to `new` after this: `new` is not open yet.
    3. publish   lift a fence on `new` (a reverse), read `new`'s last write (the open point), publish epoch+1
                 with the half owned by `new` on both sets (w: majority); checkpoint `switched`/`reversed`
    4. back      start the stream new -> old from the open point (through `old`'s fence): `old` stays a complete
                 copy of the half, so a reverse loses nothing
    5. verify    the half on `old` at the drain point vs `new` at the open point, at snapshots, while the
                 application writes; restore the history window. A difference names the `_id`s, and the
                 operator can `reverse` (the back stream resumes from its position file).
    6. wait      `run` keeps the back stream running until `finalize` (or `reverse` / `switch`) is asked.

Every phase is idempotent and checkpointed after its postcondition (SwitchRecord.phase), so a rerun after a
SIGKILL resumes at the phase it was in. `finalize` stops the back stream and is the only way to `final`.

Deletes cannot be fenced (MongoDB does not validate deletes). A delete of the half that reaches `old` after the
fence and before the switch is replayed to `new` by the drain (it drains to `old`'s last write after the fence,
not just to the fence point). A delete that reaches `old` after the switch is not replayed (the stream runs the
other way); it is detected at the verification and at `finalize` by reading `old`'s oplog after the drain point
(a delete of a document `new` still has in the half) and reported (warning event, `stray_deletes` in the
checkpoint) for the operator to repeat on `new`: never applied blindly, since the client may have re-created
the document on `new` since.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from splitter.cutover.switch import Stream, SwitchActions
from splitter.errors import BadInput, OperationalError
from splitter.events import EventType
from splitter.routing_document import PublishedState, RoutingDocument
from splitter.run_context import StepContext
from splitter.store import gatefiles
from splitter.store.atomic import now_iso
from splitter.store.records import CutoverRecord, OpTime, SwitchRecord

Verb = Literal["switch", "reverse", "finalize"]
VERBS: tuple[Verb, ...] = ("switch", "reverse", "finalize")
PAUSE_ENV = "SPLITTER_TEST_PAUSE_AT"  # tests: stop at this phase so that they can SIGKILL the run there


def refusal(c: CutoverRecord, verb: Verb, source: str, target: str) -> str | None:
    """Why `verb` cannot be asked in cutover state `c` (None: it can). Pure: status uses it too."""
    if c.state == "final":
        return "the cutover is final"
    last = c.last_switch
    settled = last is not None and last.phase == "verified"
    if verb == "finalize":
        if c.state != "switched" or not settled:
            return f"finalize needs a verified switch to {target} (the cutover is {c.state})"
        if last is not None and not last.verified:
            return f"the switch failed its verification ({last.verify_summary}); reverse instead"
        return None
    if verb == "reverse" and c.state != "switched":
        return f"reverse needs the traffic switched to {target} (the cutover is {c.state})"
    if verb == "switch" and c.state != "reversed":
        return f"switch needs the traffic reversed to {source} (the cutover is {c.state})"
    return None


def possible(c: CutoverRecord | None, source: str, target: str) -> tuple[str, ...]:
    """The requests (switch / reverse / finalize) that are possible now."""
    return () if c is None else tuple(v for v in VERBS if refusal(c, v, source, target) is None)


class CutoverProtocol:
    def __init__(self, ctx: StepContext, actions: SwitchActions, *, auto_finalize: bool = False,
                 poll: float = 0.5) -> None:
        self.ctx, self.actions, self.auto_finalize, self.poll = ctx, actions, auto_finalize, poll
        self.cutover = ctx.state.cutover or CutoverRecord(state="split", epoch=1, owner=ctx.source_name)
        self.source, self.target = ctx.source_name, ctx.target_name

    # -- what is possible now -------------------------------------------------------------------------
    def refusal(self, verb: Verb) -> str | None:
        """Why `verb` cannot be asked now (None: it can)."""
        return refusal(self.cutover, verb, self.source, self.target)

    # -- the script ------------------------------------------------------------------------------------
    def _save(self, cutover: CutoverRecord) -> None:
        self.actions.checkpoint(cutover)
        self.cutover = cutover

    def _refresh(self) -> None:
        """Take what an action checkpointed itself (fence records, the history window)."""
        self.cutover = self.actions.current() or self.cutover

    def _phase(self, phase: str, message: str, **data: object) -> None:
        self.ctx.events.emit(EventType.CUTOVER, f"cutover: {message}", phase=phase, epoch=self.cutover.epoch,
                             state=self.cutover.state, **data)

    def _pause(self, phase: str) -> None:
        if os.environ.get(PAUSE_ENV) == phase:
            self.ctx.progress(f"cutover: paused at {phase} ({PAUSE_ENV})")
            while True:
                time.sleep(1)

    def _doc(self, state: PublishedState, owner: str, epoch: int, fenced: bool,
             fenced_sets: tuple[str, ...]) -> RoutingDocument:
        routing = self.ctx.config.routing
        moving = routing.residues(self.target)
        owners = {r: (owner if r in moving else s) for r, s in routing.owners.items()}
        sets = {self.source: self.ctx.keep_hosts, self.target: self.ctx.move_hosts}
        return RoutingDocument.build(routing, epoch=epoch, state=state, owners=owners, moving=moving, sets=sets,
                                     fenced=fenced, fenced_sets=fenced_sets)

    def start(self) -> None:
        """Record and publish the routing of the split (the source owns the moving half until the switch)."""
        if self.ctx.state.cutover is None:
            # A second split of a set continues the epochs the first one published there (an application follows
            # the highest epoch: one that started again at 1 would be ignored, its fence unseen).
            self.cutover = CutoverRecord(state="split", epoch=self.actions.published_epoch() + 1, owner=self.source)
            self._save(self.cutover)
        if self.cutover.state == "split":
            self.actions.publish(self._doc("split", self.source, self.cutover.epoch, False, ()))

    def _catch_up(self) -> Stream:
        """The catch-up of the split (step catch-up) is the first stream drained into the target."""
        split = self.ctx.state.split
        return Stream(self.target, self.source, self.target, split.optime if split else OpTime(t=0, i=0))

    def _drain_spec(self, switches: tuple[SwitchRecord, ...]) -> Stream:
        """The stream that carries the half into the new owner of the switch after `switches`."""
        return self._back_stream(switches[-1]) if switches else self._catch_up()

    def _back_stream(self, sw: SwitchRecord) -> Stream:
        assert sw.back_stream and sw.open_optime
        return Stream(sw.back_stream, sw.to_set, sw.from_set, sw.open_optime)

    def switch_to(self, new: str) -> SwitchRecord:
        """Run (or resume) a switch of the moving half to `new`, through the verification."""
        c = self.cutover
        last = c.last_switch
        if last is None or (last.phase == "verified" and last.to_set != new):
            old = c.owner
            stream = self._drain_spec(c.switches)
            sw = SwitchRecord(epoch=c.epoch + 1, from_set=old, to_set=new, started_at=now_iso(),
                              drain_stream=stream.name, back_stream=f"{new}-to-{old}-e{c.epoch + 1}")
            self._save(c.model_copy(update={"state": "switching" if new == self.target else "reversing",
                                            "switches": (*c.switches, sw)}))
        return self._run_switch()

    def _update(self, **changes: object) -> SwitchRecord:
        c = self.cutover
        assert c.last_switch is not None
        sw = c.last_switch.model_copy(update=changes)
        self._save(c.model_copy(update={"switches": (*c.switches[:-1], sw)}))
        return sw

    def _run_switch(self) -> SwitchRecord:
        sw = self.cutover.last_switch
        assert sw is not None
        old, new = sw.from_set, sw.to_set
        moving_state: PublishedState = "switching" if new == self.target else "reversing"
        if sw.phase == "started":
            self.actions.close_gap(self._drain_spec(self.cutover.switches[:-1]), old)
            self.ctx.events.emit(EventType.BEFORE_CUTOVER, f"cutover: fencing {old} for {self.target}'s half",
                                 epoch=sw.epoch, from_set=old, to_set=new)
            self.actions.publish(self._doc(moving_state, old, self.cutover.epoch, True, (*self.cutover.fenced, old)))
            self.actions.raise_history()
            self._refresh()
            self.actions.fence(old)
            self._refresh()
            sw = self._update(phase="fenced", fence_optime=self.actions.last_write(old))
            self._save(self.cutover.model_copy(update={"fenced": tuple(dict.fromkeys((*self.cutover.fenced, old)))}))
            self._phase("fenced", f"{old} refuses writes of {self.target}'s half (fence optime {sw.fence_optime})")
            self._pause("fenced")
        if sw.phase == "fenced":
            until = self.actions.last_write(old)
            stream = self._drain_spec(self.cutover.switches[:-1])
            self._pause_mid_drain(stream, sw)
            through = self.actions.drain(stream, until)
            sw = self._update(phase="drained", drain_optime=through)
            self._phase("drained", f"stream {stream.name} drained to {through} and stopped; cutover point: {old} "
                                   f"{through}")
            self._pause("drained")
        if sw.phase == "drained":
            if new in self.cutover.fenced:
                self.actions.lift(new)
                self._refresh()
            opened = self.actions.last_write(new)
            fenced = tuple(s for s in self.cutover.fenced if s != new)
            state: PublishedState = "switched" if new == self.target else "reversed"
            self.actions.publish(self._doc(state, new, sw.epoch, False, fenced))
            sw = self._update(phase="published", open_optime=opened, published_at=now_iso())
            self._save(self.cutover.model_copy(update={"state": state, "owner": new, "epoch": sw.epoch,
                                                       "fenced": fenced}))
            self._phase(state, f"published epoch {sw.epoch}: {new} owns {self.target}'s half (open point "
                               f"{opened})")
            self._pause("published")
        if sw.phase in ("published", "streaming"):
            self.actions.start_stream(self._back_stream(sw))
            self._pause("streaming")
            assert sw.drain_optime and sw.open_optime
            diff = self.actions.verify(old, sw.drain_optime, new, sw.open_optime)
            strays = self.actions.stray_deletes(old, sw.drain_optime, new)
            self.actions.restore_history()
            self._refresh()
            sw = self._update(phase="verified", verified=diff.ok, verify_summary=diff.summary(),
                              stray_deletes=tuple(strays))
            self._report_strays(sw)
            self._phase("verified", f"verification at the snapshot: {diff.summary()}", ok=diff.ok)
            if not diff.ok:
                raise OperationalError(f"cutover: {diff.summary()} ({old} at {sw.drain_optime} vs {new} at "
                                       f"{sw.open_optime}); nothing is lost: {old} keeps receiving {new}'s writes "
                                       "of the half", hint=f"splitter reverse -c {self.ctx.config.config_path}")
        return sw

    def _pause_mid_drain(self, stream: Stream, sw: SwitchRecord) -> None:
        if os.environ.get(PAUSE_ENV) == "draining" and sw.fence_optime is not None:
            self.actions.drain(stream, sw.fence_optime)  # part of the way; the rest after the SIGKILL
            self._pause("draining")

    def _report_strays(self, sw: SwitchRecord) -> None:
        if sw.stray_deletes:
            self.ctx.events.warning(f"cutover: {len(sw.stray_deletes)} deletes of {self.target}'s half reached "
                                    f"{sw.from_set} after the switch and were not applied on {sw.to_set}: "
                                    f"{', '.join(sw.stray_deletes[:5])}; repeat them on {sw.to_set}",
                                    stray_deletes=list(sw.stray_deletes))

    def finalize(self) -> None:
        self.actions.stop_stream()
        self.actions.restore_history()
        self._refresh()
        sw = self.cutover.last_switch
        assert sw is not None and sw.drain_optime is not None
        strays = self.actions.stray_deletes(sw.from_set, sw.drain_optime, sw.to_set)
        if strays:
            sw = self._update(stray_deletes=tuple(strays))
            self._report_strays(sw)
        self.actions.publish(self._doc("final", self.cutover.owner, self.cutover.epoch, False, self.cutover.fenced))
        self._save(self.cutover.model_copy(update={"state": "final", "finalized_at": now_iso()}))
        self._phase("final", f"final: {self.cutover.owner} owns {self.target}'s half; the way back is closed "
                             "(cleanup may run)")

    # -- driving ----------------------------------------------------------------------------------------
    def act(self, verb: Verb) -> None:
        """Carry out one request now (BadInput when it is not possible)."""
        reason = self.refusal(verb)
        if reason:
            raise BadInput(f"{verb}: {reason}", hint=f"splitter status -c {self.ctx.config.config_path}")
        if verb == "finalize":
            self.finalize()
        else:
            self.actions.stop_stream()
            self.switch_to(self.source if verb == "reverse" else self.target)

    def resume(self) -> None:
        """Finish a switch that is in progress, or make the first one."""
        c = self.cutover
        if c.state == "split":
            self.switch_to(self.target)
        elif c.state in ("switching", "reversing") or (c.last_switch and c.last_switch.phase != "verified"):
            self._run_switch()
        elif c.state != "final" and c.last_switch is not None:
            self.actions.start_stream(self._back_stream(c.last_switch))

    def run(self) -> None:
        """The whole cutover as `run` does it: start, switch, then wait for requests until final."""
        self.start()
        self.resume()
        if self.auto_finalize and self.refusal("finalize") is None:
            self.ctx.progress("cutover: finalizing by itself (lab inventory or --yes-cutover)")
            self.finalize()
        self._wait()

    def _wait(self) -> None:
        config = self.ctx.config.config_path
        announced = None
        while self.cutover.state != "final":
            if announced != self.cutover.epoch:
                possible = [v for v in VERBS if self.refusal(v) is None]
                self._phase("waiting", f"{self.cutover.state} (epoch {self.cutover.epoch}); the way back runs; "
                            "waiting for " + " or ".join(f"`splitter {v} -c {config}`" for v in possible),
                            possible=possible)
                announced = self.cutover.epoch
            self.actions.check_stream()
            verb = next((v for v in VERBS if gatefiles.read_request(self.ctx.files, v)), None)
            if verb is None:
                time.sleep(self.poll)
                continue
            gatefiles.consume_request(self.ctx.files, verb)
            reason = self.refusal(verb)
            if reason:
                self.ctx.events.warning(f"cutover: request {verb} ignored: {reason}")
                continue
            self.act(verb)
