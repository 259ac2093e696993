"""Builds everything one command needs from split.yaml: inventory, connector, inspector, applier, state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from splitter.cluster.applier import Applier
from splitter.cluster.connect import Connector
from splitter.cluster.inspector import Inspector
from splitter.config import load_config
from splitter.engine.audit import AuditLog
from splitter.engine.state import StateStore
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.inventory import load_inventory
from splitter.steps.context import StepContext


def open_session(config_path: str | Path, *, dry_run: bool, progress: Callable[[str], None],
                 auto_confirm: bool = False) -> StepContext:
    """Validate all input first (BadInput, nothing touched), then wire the pieces together."""
    config = load_config(config_path)
    inventory = load_inventory(config.inventory_path)
    connector = Connector(config.credentials)
    store = StateStore(config.state_path)
    audit = AuditLog(config.state_path)
    adapter = AnsibleAdapter(config.inventory_path, config.state_path / "ansible")
    def show_retries(message: str) -> None:
        if message.startswith("retrying"):
            progress(message)

    applier = Applier(connector, adapter, audit, dry_run=dry_run, on_action=show_retries)
    return StepContext(config=config, inventory=inventory, inspector=Inspector(connector), applier=applier,
                       state=store.load(), store=store, progress=progress, auto_confirm=auto_confirm)
