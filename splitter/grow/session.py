"""Builds what one grow command needs from grow.yaml; input is validated first (BadInput, nothing touched)."""

from __future__ import annotations

from pathlib import Path

from splitter.cluster.applier import Applier
from splitter.cluster.connect import Connector
from splitter.cluster.inspector import Inspector
from splitter.engine.runner import Runner
from splitter.events import EventBus
from splitter.grow.config import load_grow_config
from splitter.grow.context import GrowContext
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.inventory import load_inventory
from splitter.store.audit import AuditLog
from splitter.store.checkpoint import StateStore
from splitter.store.files import StateFiles
from splitter.store.lock import StateLock


def open_grow_session(config_path: str | Path, *, dry_run: bool, events: EventBus) -> GrowContext:
    """Config, inventory and credentials first; then the same pieces a split uses. Changing commands keep an
    audit log in the grow's own state dir."""
    config = load_grow_config(config_path)
    inventory = load_inventory(config.inventory_path)
    connector = Connector(config.credentials)
    files = StateFiles(config.state_path)
    store = StateStore(files)
    state = store.load()
    if not dry_run:
        events.subscribe(AuditLog(config.state_path).handle)
    adapter = AnsibleAdapter(config.inventory_path, files.ansible_dir)
    applier = Applier(connector, adapter, events, dry_run=dry_run)
    return GrowContext(config=config, inventory=inventory, inspector=Inspector(connector),  # type: ignore[arg-type]
                       applier=applier, state=state, store=store, events=events)


class GrowRunner(Runner):
    """The split's runner; only the command that resumes differs."""

    def _next_command(self) -> str:
        return f"splitter grow run -c {self.ctx.config.config_path}"


def run_grow(ctx: GrowContext, until: str | None = None) -> list[str]:
    """Hold the state dir's lock and run the grow's steps from the checkpoint; returns the steps completed."""
    from splitter.engine.gates import GateKeeper  # the grow has no gates; the runner wants a keeper anyway
    from splitter.grow.steps.registry import grow_steps

    lock = StateLock(ctx.config.state_path)
    lock.acquire("splitter grow run")
    try:
        return GrowRunner(ctx, grow_steps(), GateKeeper(ctx, False), until=until).run()
    finally:
        lock.release()
        ctx.inspector.connector.close()
