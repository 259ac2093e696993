"""grow.yaml: which set grows by which new data nodes, validated up front (BadInput on any problem)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from splitter.config import Duration, FileConfig, Member, Strict, checked_files, load_model
from splitter.routing import Routing


class NewMember(Member):
    dbpath: str = Field(description="its empty dbpath (as the inventory's mongod_dbpath)")
    priority: float = Field(default=1, ge=0, le=1000, description="priority once it has caught up")
    votes: int = Field(default=1, ge=0, le=1, description="votes once it has caught up")


class GrowingSet(Strict):
    name: str
    members: list[Member] = Field(min_length=1, description="every member of the set now, arbiters included")


class GrowPlanning(Strict):
    expected_initial_sync: Duration = Field(default="2h", description="how long the initial sync may take: every "
                                            "member's oplog must span at least this (or not be full yet)")
    min_free_disk_vs_data: float = Field(default=1.2, ge=0, description="each new node's filesystem needs this "
                                         "multiple of the set's data on disk free")
    max_member_lag: Duration = "10s"
    default_write_concern: dict = Field(default_factory=lambda: {"w": "majority"})


class GrowConfig(FileConfig):
    set: GrowingSet
    new_members: list[NewMember] = Field(min_length=1, max_length=5)
    planning: GrowPlanning = Field(default_factory=GrowPlanning)
    routing: Routing | None = Field(default=None, description="optional: the routing of all sets, validated like "
                                    "split.yaml's (the grown set must own a residue)")

    @model_validator(mode="after")
    def _distinct(self) -> GrowConfig:
        everyone = [*self.set.members, *self.new_members]
        names, hosts = [m.name for m in everyone], [m.host for m in everyone]
        if len(set(names)) != len(names) or len(set(hosts)) != len(hosts):
            raise ValueError("set.members and new_members must have distinct names and hosts (a new member is not "
                             "yet in the set)")
        if self.routing is not None and not self.routing.residues(self.set.name):
            raise ValueError(f"routing gives no residue to {self.set.name}, the set being grown; routing sets are "
                             f"{', '.join(self.routing.sets)}")
        return self

    @property
    def hosts(self) -> list[str]:
        return [m.host for m in self.set.members]

    @property
    def new_hosts(self) -> list[str]:
        return [m.host for m in self.new_members]

    @property
    def new_names(self) -> list[str]:
        return [m.name for m in self.new_members]


def load_grow_config(path: str | Path) -> GrowConfig:
    """Read and validate grow.yaml; every problem becomes one BadInput naming the file and key."""
    return checked_files(Path(path), load_model(path, GrowConfig, "grow.yaml"))
