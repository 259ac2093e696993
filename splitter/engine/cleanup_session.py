"""Builds everything `splitter cleanup` needs, beside `open_session`: config, state, routing pin, the refusal
before `finalize`, the lock, clients, run control and the event bus with the audit log; then runs one worker per
chosen set.

Input is checked first (BadInput, nothing touched): the config, the routing against the pinned one, and whether
the split is final. Outside the window nothing is touched at all. Touches the state dir (lock, audit log,
positions) and both sets through the workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pymongo import MongoClient

from splitter.cleanup.control import CleanupLock, RunControl
from splitter.cleanup.options import Options, chosen_sets
from splitter.cleanup.report import CleanupReport
from splitter.cleanup.throttle import Throttler
from splitter.cleanup.worker import CleanupWorker
from splitter.cluster.connect import Connector
from splitter.config import SplitConfig, load_config
from splitter.engine.session import check_routing_pin
from splitter.errors import BadInput
from splitter.events import EventBus
from splitter.observe import observe_command
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.files import StateFiles


def refuse_before_finalize(config: SplitConfig, state: RunState) -> None:
    """Cleanup deletes the way back: it runs only once the cutover is recorded and final (exit 2 otherwise)."""
    path = config.config_path
    cutover = state.cutover
    if cutover is None:
        raise BadInput(
            f"the cutover is not recorded in {config.state_path}: clients may still read and write both halves "
            f"on {config.source.name}, so deleting either half now would lose data they serve",
            hint=f"finish `splitter run -c {path}` (deploy-client-v2), then `splitter finalize -c {path}`")
    if cutover.state != "final":
        raise BadInput(
            f"the cutover is {cutover.state!r}, not final: until `finalize` the traffic of {config.target.name}'s "
            f"half can still be switched back, and the other half on each set is the way back; deleting it now "
            f"would take that away",
            hint=f"once the new routing has proven itself, `splitter finalize -c {path}`; then run the cleanup")


@dataclass
class CleanupSession:
    """One `splitter cleanup` invocation, ready to run."""

    config: SplitConfig
    state: RunState
    files: StateFiles
    events: EventBus
    control: RunControl
    connector: Connector | None = None
    clients: dict[str, MongoClient] = field(default_factory=dict)

    def client(self, set_name: str) -> MongoClient:
        """A client of one set of the split: the keep members for the source, the moved ones for the target."""
        if set_name not in self.clients:
            connector = self.connector = self.connector or Connector(self.config.credentials)
            members = self.config.keep_members if set_name == self.config.source.name else self.config.move_members
            self.clients[set_name] = connector.replica_set(set_name, [m.host for m in members])
        return self.clients[set_name]

    def worker(self, set_name: str, opts: Options) -> CleanupWorker:
        other = self.config.partner(set_name)
        return CleanupWorker(routing=self.config.routing, set_name=set_name, this=self.client(set_name),
                             other=self.client(other), other_set=other, state_dir=self.config.state_path,
                             limits=opts.limits, batch_size=opts.batch_size, parallel=opts.parallel,
                             dry_run=opts.dry_run, remove_orphans=opts.remove_orphans,
                             exact_counts=opts.exact_counts, control=self.control, events=self.events)

    def run(self, opts: Options, *, signals: bool = True) -> CleanupReport:
        """Stop at once outside the window; else take the lock (not in a dry run) and run one worker per chosen
        set, each in a thread; a failing worker stops the others after their current chunk."""
        opening = Throttler(opts.limits).opening(datetime.now())
        if opening.action == "stop":
            return CleanupReport(stop_kind=opening.kind, stop_reason=opening.reason)
        with ExitStack() as stack:
            if not opts.dry_run:
                stack.enter_context(CleanupLock(self.config.state_path))
            if signals:
                self.control.install_signals()
                stack.callback(self.control.restore_signals)
            workers = [self.worker(name, opts) for name in chosen_sets(self.config, opts.set_choice)]
            return CleanupReport(sets=self._run_all(workers))

    def _run_all(self, workers: list[CleanupWorker]) -> list:
        with ThreadPoolExecutor(len(workers), thread_name_prefix="cleanup") as pool:
            futures = [pool.submit(w.run) for w in workers]
            try:
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                if any(f.exception() is not None for f in finished):
                    self.control.request_stop("stopped because the other set's cleanup failed")
                return [f.result() for f in futures]
            except BaseException:  # Ctrl-C included: let every worker finish its chunk and save its position
                self.control.request_stop("interrupted")
                raise


@contextmanager
def open_cleanup_session(config: SplitConfig | str | Path, *, dry_run: bool, events: EventBus,
                         connector: Connector | None = None, audit: bool = True) -> Iterator[CleanupSession]:
    """Validate the input and the split's state first (BadInput, nothing touched), then wire the session. With
    `audit` (and not a dry run), every event of this cleanup is appended to the state dir's audit log."""
    if not isinstance(config, SplitConfig):
        config = load_config(config)
    files = StateFiles(config.state_path)
    state = StateStore(files).load()
    check_routing_pin(config, state)
    refuse_before_finalize(config, state)
    if audit and not dry_run:  # the audit log, the hooks and the metrics file, as for every changing command
        observe_command(events, config, state)
    yield CleanupSession(config, state, files, events, RunControl(config.state_path), connector)
