"""Builds everything one command needs from split.yaml: inventory, connector, inspector, applier, state, events.

Input is validated first (BadInput, nothing touched): the config, the inventory, the credentials, and the routing
against the one the run pinned at its start.
"""

from __future__ import annotations

from pathlib import Path

from splitter.cluster.applier import Applier
from splitter.cluster.connect import Connector
from splitter.cluster.inspector import Inspector
from splitter.config import SplitConfig, load_config
from splitter.engine.status import step_gates
from splitter.errors import BadInput
from splitter.events import EventBus
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.inventory import load_inventory
from splitter.observe import observe_command
from splitter.run_context import StepContext
from splitter.steps.registry import all_steps
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.files import StateFiles


def check_routing_pin(config: SplitConfig, state: RunState) -> None:
    """A routing that differs from the one pinned at the first `run` is bad input for every command."""
    if state.routing_pin is None:
        return
    changed = config.routing.differences(state.routing_pin)
    if changed:
        raise BadInput(f"{config.config_path}: the routing differs from the one this split pinned at its start:\n  "
                       + "\n  ".join(changed),
                       hint="put the routing back as it was: documents were caught up, fenced and verified by it")


def open_session(config_path: str | Path, *, dry_run: bool, events: EventBus, auto_confirm: bool = False,
                 audit: bool = True) -> StepContext:
    """Validate all input first (BadInput, nothing touched), then wire the pieces together. With `audit` (and not
    a dry run), every event of this command goes to the audit log, the hooks and the metrics file."""
    config = load_config(config_path)
    inventory = load_inventory(config.inventory_path)
    connector = Connector(config.credentials)
    files = StateFiles(config.state_path)
    store = StateStore(files)
    state = store.load()
    check_routing_pin(config, state)
    if audit and not dry_run:
        observe_command(events, config, state, step_gates(all_steps()))
    adapter = AnsibleAdapter(config.inventory_path, files.ansible_dir)
    applier = Applier(connector, adapter, events, dry_run=dry_run)
    return StepContext(config=config, inventory=inventory, inspector=Inspector(connector), applier=applier,
                       state=state, store=store, events=events, auto_confirm=auto_confirm)
