"""The split's StepContext seen from a grow: the set being grown plays rs1, so the reconfig helpers, the
default-write-concern check and the runner work unchanged."""

from __future__ import annotations

from typing import cast

from pymongo import MongoClient

from splitter.grow.config import GrowConfig
from splitter.run_context import StepContext


class GrowContext(StepContext):
    """`config` holds a GrowConfig; `source_*` and `rs1()` name the set being grown."""

    @property
    def grow(self) -> GrowConfig:
        return cast(GrowConfig, self.config)

    @property
    def source_name(self) -> str:
        return self.grow.set.name

    @property
    def target_name(self) -> str:
        return self.grow.set.name

    @property
    def keep_hosts(self) -> list[str]:
        return self.grow.hosts

    @property
    def move_hosts(self) -> list[str]:
        return []

    @property
    def move_names(self) -> list[str]:
        return []

    def rs1(self) -> MongoClient:
        return self.inspector.connector.replica_set(self.source_name, self.grow.hosts)
