"""The cutover script without a cluster: order of the phases, resume after a crash at every phase, what is
possible when, and the invariant that no stream writes into a set after it opened for the moving half."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from splitter.catchup.apply import is_fence_change, translate
from splitter.cutover import fence
from splitter.cutover.protocol import CutoverProtocol
from splitter.cutover.snapshot import SnapshotDiff
from splitter.cutover.switch import Stream, SwitchActions
from splitter.errors import BadInput, OperationalError
from splitter.events import EventBus
from splitter.routing import Routing
from splitter.routing_document import RoutingDocument
from splitter.store.checkpoint import RunState
from splitter.store.files import StateFiles
from splitter.store.records import CutoverRecord, OpTime, SplitPoint

ROUTING = Routing(remainders={"rs1": 0, "rs2": 1}, databases={"app": None})


class Crash(Exception):
    pass


class FakeCluster(SwitchActions):
    """Records every action; `crash_after` raises after the named action (a SIGKILL there)."""

    def __init__(self, state: RunState, crash_after: str | None = None, diff: SnapshotDiff | None = None) -> None:
        self.state, self.crash_after, self.diff = state, crash_after, diff or SnapshotDiff()
        self.lines: list[str] = []
        self.calls: list[str] = []
        self.clock = 100
        self.opened: set[str] = set()     # sets that take writes of the moving half (published owner)
        self.docs: list[RoutingDocument] = []
        self.running: Stream | None = None

    def _did(self, name: str) -> None:
        self.calls.append(name)
        if name == self.crash_after:
            raise Crash(name)

    def checkpoint(self, cutover: CutoverRecord) -> None:
        self.state.cutover = cutover

    def current(self) -> CutoverRecord | None:
        return self.state.cutover

    def publish(self, doc: RoutingDocument) -> None:
        self.docs.append(doc)
        self.opened = set() if doc.fenced else {doc.owners["1"]}
        self._did(f"publish {doc.state} e{doc.epoch}{' fenced' if doc.fenced else ''}")

    def fence(self, set_name: str) -> None:
        self._did(f"fence {set_name}")

    def lift(self, set_name: str) -> None:
        self._did(f"lift {set_name}")

    def last_write(self, set_name: str) -> OpTime:
        self.clock += 1
        return OpTime(t=self.clock, i=1)

    def close_gap(self, stream: Stream, old: str) -> None:
        assert stream.target not in self.opened and stream.source == old
        self._did(f"close gap {stream.name}")

    def drain(self, stream: Stream, until: OpTime) -> OpTime:
        assert stream.target not in self.opened, f"{stream.name} would write into open {stream.target}"
        self._did(f"drain {stream.name}")
        return until

    def start_stream(self, stream: Stream) -> None:
        assert stream.target not in self.opened
        self.running = stream
        self._did(f"start {stream.name}")

    def stop_stream(self) -> None:
        self.running = None

    def raise_history(self) -> None:
        self._did("raise history")

    def restore_history(self) -> None:
        self._did("restore history")

    def verify(self, old: str, old_at: OpTime, new: str, new_at: OpTime) -> SnapshotDiff:
        assert old_at.ts < new_at.ts
        self._did(f"verify {old} {new}")
        return self.diff


def _ctx(tmp_path: Path, state: RunState) -> SimpleNamespace:
    state.split = SplitPoint(optime=OpTime(t=50, i=1), oplog_ends={})
    events = EventBus()
    return SimpleNamespace(config=SimpleNamespace(routing=ROUTING, config_path="split.yaml"), state=state,
                           source_name="rs1", target_name="rs2", keep_hosts=["a:1"], move_hosts=["b:1"],
                           events=events, progress=events.progress, files=StateFiles(tmp_path))


SWITCH = ["publish split e1", "close gap rs2", "publish switching e1 fenced", "raise history", "fence rs1", "drain rs2",
          "publish switched e2", "start rs2-to-rs1-e2", "verify rs1 rs2", "restore history"]


def test_a_second_split_continues_the_published_epochs(tmp_path: Path) -> None:
    """The source was split before (final at epoch 2): this split publishes e3, switches at e4."""
    state = RunState()
    cluster = FakeCluster(state)
    cluster.published_epoch = lambda: 2  # type: ignore[method-assign]
    protocol = CutoverProtocol(_ctx(tmp_path, state), cluster)
    protocol.start()
    protocol.resume()
    assert [c for c in cluster.calls if c.startswith("publish")] == [
        "publish split e3", "publish switching e3 fenced", "publish switched e4"]
    assert state.cutover.epoch == 4


def test_a_switch_runs_the_phases_in_order(tmp_path: Path) -> None:
    state = RunState()
    cluster = FakeCluster(state)
    protocol = CutoverProtocol(_ctx(tmp_path, state), cluster)
    protocol.start()
    protocol.resume()
    assert cluster.calls == SWITCH
    assert state.cutover.state == "switched" and state.cutover.epoch == 2 and state.cutover.owner == "rs2"
    assert state.cutover.fenced == ("rs1",) and state.cutover.last_switch.verified
    assert cluster.docs[-1].owners == {"0": "rs1", "1": "rs2"} and cluster.docs[0].owners == {"0": "rs1", "1": "rs1"}
    assert [v for v in ("switch", "reverse", "finalize") if protocol.refusal(v) is None] == ["reverse", "finalize"]

    cluster.calls.clear()
    protocol.act("reverse")
    assert cluster.calls == ["close gap rs2-to-rs1-e2", "publish reversing e2 fenced", "raise history", "fence rs2",
                             "drain rs2-to-rs1-e2",
                             "lift rs1", "publish reversed e3", "start rs1-to-rs2-e3", "verify rs2 rs1",
                             "restore history"]
    assert state.cutover.state == "reversed" and state.cutover.fenced == ("rs2",)
    assert protocol.refusal("finalize") and protocol.refusal("reverse") and protocol.refusal("switch") is None
    cluster.calls.clear()
    protocol.act("switch")
    assert cluster.calls[:1] + cluster.calls[3:5] == ["close gap rs1-to-rs2-e3", "fence rs1", "drain rs1-to-rs2-e3"]
    assert "lift rs2" in cluster.calls
    protocol.act("finalize")
    assert state.cutover.state == "final" and cluster.running is None and cluster.docs[-1].state == "final"
    with pytest.raises(BadInput):
        protocol.act("reverse")


@pytest.mark.parametrize("crash_after", SWITCH[1:])
def test_a_crash_after_any_action_resumes_to_the_same_end(tmp_path: Path, crash_after: str) -> None:
    state = RunState()
    first = FakeCluster(state, crash_after=crash_after)
    with pytest.raises(Crash):
        protocol = CutoverProtocol(_ctx(tmp_path, state), first)
        protocol.start()
        protocol.resume()
    again = FakeCluster(state)
    again.opened, again.clock = first.opened, first.clock  # the published routing and time go on
    protocol = CutoverProtocol(_ctx(tmp_path, state), again)
    protocol.start()
    protocol.resume()
    assert state.cutover.state == "switched" and state.cutover.epoch == 2 and state.cutover.last_switch.verified
    assert again.calls[-1] == "restore history" and again.running is not None
    done = first.calls + again.calls
    # Nothing after the drain is repeated before it, and the fence is up before any drain.
    assert done.index("fence rs1") < done.index("drain rs2") < done.index("publish switched e2")


def test_a_failed_verification_names_ids_and_leaves_reverse_possible(tmp_path: Path) -> None:
    state = RunState()
    cluster = FakeCluster(state, diff=SnapshotDiff(counts={"app.users": (3, 2)}, missing=["u7"]))
    protocol = CutoverProtocol(_ctx(tmp_path, state), cluster)
    with pytest.raises(OperationalError, match="u7") as failed:
        protocol.run()
    assert "splitter reverse" in (failed.value.hint or "")
    assert protocol.refusal("reverse") is None and "verification" in (protocol.refusal("finalize") or "")


def test_the_fence_filter_and_its_change_event() -> None:
    f = fence.fence_filter(ROUTING, "user_id", "rs2")
    assert f == {"$nor": [ROUTING.half_filter("user_id", "rs2")]}
    event = {"operationType": "modify", "ns": {"db": "app", "coll": "users"},
             "operationDescription": {"validator": {"$and": [{"x": 1}, f]}, "validationAction": "error"}}
    assert is_fence_change(event) and translate(event, ROUTING, "rs2").note is None
    other = {**event, "operationDescription": {"validator": {"x": {"$gt": 1}}}}
    assert not is_fence_change(other) and translate(other, ROUTING, "rs2").note


def test_deletes_on_the_old_owner_after_the_switch_are_reported_at_finalize(tmp_path: Path) -> None:
    state = RunState()
    cluster = FakeCluster(state)
    ctx = _ctx(tmp_path, state)
    warnings: list[str] = []
    ctx.events.warning = lambda message, **_data: warnings.append(message)
    protocol = CutoverProtocol(ctx, cluster)
    protocol.start()
    protocol.resume()
    cluster.stray_deletes = lambda old, since, new: ["app.events 7"]  # type: ignore[method-assign]
    protocol.act("finalize")
    assert state.cutover.state == "final" and state.cutover.last_switch.stray_deletes == ("app.events 7",)
    assert warnings and "app.events 7" in warnings[0] and "repeat them on rs2" in warnings[0]


def test_the_switch_retries_a_write_concern_timeout_instead_of_leaving_the_half_fenced() -> None:
    """A member catching up after a failover makes a w: majority write of the switch time out: the switch tries
    again (with a retry event naming what), where a failed run would leave the application's half fenced."""
    from pymongo.errors import WTimeoutError

    from splitter.cutover.switch import RealSwitch
    from splitter.events import EventType

    bus, seen = EventBus(), []
    bus.subscribe(seen.append, types={EventType.RETRY}, blocking=True)
    switch = RealSwitch(SimpleNamespace(events=bus))
    calls = []

    def publish_once_caught_up() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise WTimeoutError("waiting for replication timed out", 64, {"code": 64})
        return "published"

    assert switch._retried("publishing the routing on rs1", publish_once_caught_up) == "published"
    assert len(calls) == 3
    assert [e.data["what"] for e in seen] == ["publishing the routing on rs1"] * 2
    assert all("waiting for replication timed out" in e.message for e in seen)


class SlowStream:
    """A catch-up worker whose drain passes take the scripted seconds (then the last one again)."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds, self.passes = seconds, 0

    def drain(self, until: object, quiet_seconds: float, timeout: float) -> None:
        import time

        time.sleep(self.seconds[min(self.passes, len(self.seconds) - 1)])
        self.passes += 1


def _gap_switch(worker: SlowStream, max_wait: str) -> tuple[object, list[str]]:
    from splitter.config import Gates
    from splitter.cutover.switch import RealSwitch

    said: list[str] = []
    ctx = SimpleNamespace(config=SimpleNamespace(gates=Gates(fence_max_lag="0.2s", fence_max_wait=max_wait),
                                                 config_path="split.yaml"),
                          target_name="rs2", progress=said.append)
    switch = RealSwitch(ctx)  # type: ignore[arg-type]
    switch._worker = lambda _stream: worker  # type: ignore[method-assign]
    switch.last_write = lambda _set: OpTime(t=1, i=1)  # type: ignore[method-assign]
    return switch, said


def test_the_fence_waits_until_a_pass_of_the_stream_is_short() -> None:
    """A backlog is drained unfenced, pass after pass, until one pass takes at most gates.fence_max_lag: the fence
    then holds the application's writes of the half for about that long, not for the whole backlog."""
    worker = SlowStream([0.5, 0.3, 0.05])
    switch, said = _gap_switch(worker, "30s")
    switch.close_gap(Stream("rs2", "rs1", "rs2", OpTime(t=1, i=1)), "rs1")
    assert worker.passes == 3 and len(said) == 2
    assert said[0].startswith("cutover: stream rs2 needed 0.5s to reach rs1's last write; the fence waits for a pass "
                              "of at most 0.2s")


def test_a_stream_that_cannot_close_the_gap_fences_nothing() -> None:
    worker = SlowStream([0.4])
    switch, _said = _gap_switch(worker, "1s")
    with pytest.raises(OperationalError, match="nothing is fenced") as failed:
        switch.close_gap(Stream("rs2", "rs1", "rs2", OpTime(t=1, i=1)), "rs1")
    assert "splitter run -c split.yaml" in failed.value.hint and 2 <= worker.passes <= 3
