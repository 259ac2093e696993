"""The context every step, the cutover protocol and preflight get: config, inventory, inspector, applier, state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from splitter.cluster.applier import Applier
from splitter.cluster.inspector import Inspector
from splitter.config import SplitConfig
from splitter.errors import RetryableError
from splitter.events import EventBus
from splitter.inventory import InventoryHost
from splitter.store.checkpoint import RunState, StateStore
from splitter.store.files import StateFiles
from splitter.waiting import wait_until


@dataclass
class StepContext:
    """Shared by all steps of one run. `state` carries the steps' typed records across crashes."""

    config: SplitConfig
    inventory: dict[str, InventoryHost]
    inspector: Inspector
    applier: Applier
    state: RunState
    store: StateStore
    events: EventBus
    auto_confirm: bool = False
    yes_cutover: bool = False  # finalize the cutover by itself after its verification (also: lab + --yes)

    @property
    def files(self) -> StateFiles:
        return self.store.files

    def progress(self, message: str) -> None:
        """A sentence for the operator (a `progress` event)."""
        self.events.progress(message)

    # -- names and addresses ------------------------------------------------------------------------
    @property
    def source_name(self) -> str:
        return self.config.source.name

    @property
    def target_name(self) -> str:
        return self.config.target.name

    @property
    def keep_hosts(self) -> list[str]:
        return [m.host for m in self.config.keep_members]

    @property
    def move_hosts(self) -> list[str]:
        return [m.host for m in self.config.move_members]

    @property
    def move_names(self) -> list[str]:
        return list(self.config.source.move)

    def maintenance_host(self, name: str) -> str:
        inv = self.inventory[name]
        return f"{inv.connect_host}:{inv.maintenance_port}"

    def rs1(self) -> MongoClient:
        return self.inspector.connector.replica_set(self.source_name, self.keep_hosts)

    def rs2(self) -> MongoClient:
        return self.inspector.connector.replica_set(self.target_name, self.move_hosts)

    def member(self, host: str) -> MongoClient:
        return self.inspector.connector.member(host)

    def source_primary(self) -> str:
        """host:port of rs1's primary, as rs1's own members report it."""
        for host in self.keep_hosts + self.move_hosts:
            try:
                hello = self.inspector.hello(host)
            except RetryableError:
                continue
            if hello.get("setName") == self.source_name and hello.get("primary"):
                return str(hello["primary"])
        raise RetryableError(f"no primary of {self.source_name} found via {', '.join(self.keep_hosts)}")

    def save(self) -> None:
        self.store.save(self.state)

    # -- waiting with visible progress --------------------------------------------------------------
    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 180, interval: float = 0.5,
                 describe: Callable[[], str] | None = None) -> Any:
        """Poll check() until it returns a truthy value; `waiting` events say what we wait for and how long."""
        return wait_until(what, check, timeout=timeout, interval=interval, describe=describe, events=self.events)
