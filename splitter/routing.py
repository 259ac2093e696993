"""Which half a document belongs to: key field per collection or database, modulus, remainder per set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

INTEGER_TYPES = ["int", "long"]


@dataclass(frozen=True)
class RoutedCollection:
    """One collection that is split, with the key field that decides its half."""

    database: str
    collection: str
    key: str

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection}"


class Routing(BaseModel):
    """`routing:` in split.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus: int = Field(default=2, ge=2)
    remainders: dict[str, int] = Field(description="set name -> remainder that set keeps")
    default_key: str = "user_id"
    databases: dict[str, str | None] = Field(
        description="routed database -> its key field (null: default_key)", min_length=1)
    collections: dict[str, str] = Field(default_factory=dict, description="'db.coll' -> key field override")
    exclude: list[str] = Field(default_factory=list, description="'db.coll' that are not split")

    @model_validator(mode="after")
    def _remainders(self) -> Routing:
        if len(self.remainders) != 2:
            raise ValueError("remainders must name exactly the two sets")
        values = list(self.remainders.values())
        if values[0] == values[1] or any(not 0 <= v < self.modulus for v in values):
            raise ValueError(f"remainders must be two different values in 0..{self.modulus - 1}")
        for ns in [*self.collections, *self.exclude]:
            if "." not in ns:
                raise ValueError(f"{ns!r} must be written as database.collection")
        return self

    def key_for(self, database: str, collection: str) -> str:
        return self.collections.get(f"{database}.{collection}") or self.databases.get(database) or self.default_key

    def remainder(self, set_name: str) -> int:
        return self.remainders[set_name]

    def other_set(self, set_name: str) -> str:
        return next(s for s in self.remainders if s != set_name)

    def routed(self, database: str, collection: str) -> RoutedCollection | None:
        if database not in self.databases or f"{database}.{collection}" in self.exclude:
            return None
        if collection.startswith("system."):
            return None
        return RoutedCollection(database, collection, self.key_for(database, collection))

    def half_filter(self, key: str, set_name: str) -> dict[str, Any]:
        """Documents that belong to `set_name`: integer key with the set's remainder.

        `$type`/`$mod` also match array elements, so arrays are excluded explicitly: a key of [1] is unclaimed.
        """
        return {"$and": [{key: {"$type": INTEGER_TYPES, "$mod": [self.modulus, self.remainder(set_name)]}},
                         {key: {"$not": {"$type": "array"}}}]}

    def unclaimed_filter(self, key: str) -> dict[str, Any]:
        """Documents no set can claim: key missing, not an integer, or (negative) matching no remainder."""
        return {"$nor": [self.half_filter(key, s) for s in self.remainders]}

    def owner(self, value: Any) -> str | None:
        """The set a key value routes to, or None for a missing / non-integer key."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        # MongoDB's $mod truncates toward zero (-3 % 2 == -1), unlike Python; mirror the server.
        r = value % self.modulus if value >= 0 else -((-value) % self.modulus)
        return next((s for s, rem in self.remainders.items() if rem == r), None)
