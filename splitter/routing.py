"""Which set a document belongs to: key field per collection or database, modulus, owner of each residue.

`owners` maps every residue 0..modulus-1 to the set that serves it, for the whole key space and any number of
sets (rs1 keeps `% 4 == 0`, rs3 `2`, rs2 `1` and `3`). `remainders: {rs1: 0, rs2: 1}` is the short form for
one residue per set. A split moves the residues its target owns from its source; documents of residues owned
by a third set are neither replayed, verified, fenced nor deleted by it.
"""

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


def server_residue(value: int, modulus: int) -> int:
    """MongoDB's `$mod` truncates toward zero (-3 % 2 == -1), unlike Python; mirror the server."""
    return value % modulus if value >= 0 else -((-value) % modulus)


class Routing(BaseModel):
    """`routing:` in split.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modulus: int = Field(default=2, ge=2, le=1024)
    owners: dict[int, str] = Field(default_factory=dict, description="residue -> the set that serves it")
    remainders: dict[str, int] | None = Field(default=None, description="short form: set -> its one residue")
    default_key: str = "user_id"
    databases: dict[str, str | None] = Field(
        description="routed database -> its key field (null: default_key)", min_length=1)
    collections: dict[str, str] = Field(default_factory=dict, description="'db.coll' -> key field override")
    exclude: list[str] = Field(default_factory=list, description="'db.coll' that are not split")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("remainders") is not None:
            remainders = data["remainders"]
            if not isinstance(remainders, dict):
                raise ValueError("remainders must map each set name to the residue it keeps")
            by_residue: dict[int, str] = {}
            for name, residue in remainders.items():
                if not isinstance(residue, int) or isinstance(residue, bool):
                    raise ValueError(f"remainders.{name}: {residue!r} is not a whole number")
                if residue in by_residue:
                    raise ValueError(f"remainders give residue {residue} to both {by_residue[residue]} and {name}")
                by_residue[residue] = name
            # A dumped model carries both forms; they must then agree (an operator gives one or the other).
            given = data.get("owners")
            if given and {int(k): v for k, v in given.items()} != by_residue:
                raise ValueError("give either owners (residue -> set) or remainders (set -> residue), not both")
            data = {**data, "owners": by_residue}
        return data

    @model_validator(mode="after")
    def _every_residue_owned_once(self) -> Routing:
        if not self.owners:
            raise ValueError("routing needs owners (residue -> set), e.g. owners: {0: rs1, 1: rs2}")
        outside = sorted(r for r in self.owners if not 0 <= r < self.modulus)
        if outside:
            raise ValueError(f"residues {outside} are outside 0..{self.modulus - 1} (modulus {self.modulus})")
        unowned = [r for r in range(self.modulus) if r not in self.owners]
        if unowned:
            listing = ", ".join(f"{r}: <set>" for r in unowned)
            raise ValueError(f"modulus {self.modulus} leaves residue(s) {unowned} owned by no set: their documents "
                             f"would never be caught up, verified or cleaned; say who keeps them in owners "
                             f"({listing})")
        for ns in [*self.collections, *self.exclude]:
            if "." not in ns:
                raise ValueError(f"{ns!r} must be written as database.collection")
        return self

    # -- sets and residues ----------------------------------------------------------------------------
    @property
    def sets(self) -> tuple[str, ...]:
        """Every set the map names, in the order of its smallest residue."""
        return tuple(dict.fromkeys(self.owners[r] for r in sorted(self.owners)))

    def residues(self, set_name: str) -> tuple[int, ...]:
        return tuple(r for r in sorted(self.owners) if self.owners[r] == set_name)

    def describe(self, key: str | None = None) -> str:
        """'user_id % 2 == 0 -> rs1, user_id % 2 == 1 -> rs2' (one clause per set)."""
        key = key or self.default_key
        parts = []
        for name in self.sets:
            rs = self.residues(name)
            cond = f"== {rs[0]}" if len(rs) == 1 else f"in {{{', '.join(map(str, rs))}}}"
            parts.append(f"{key} % {self.modulus} {cond} -> {name}")
        return ", ".join(parts)

    # -- collections ----------------------------------------------------------------------------------
    def key_for(self, database: str, collection: str) -> str:
        return self.collections.get(f"{database}.{collection}") or self.databases.get(database) or self.default_key

    def routed(self, database: str, collection: str) -> RoutedCollection | None:
        if database not in self.databases or f"{database}.{collection}" in self.exclude:
            return None
        if collection.startswith("system."):
            return None
        return RoutedCollection(database, collection, self.key_for(database, collection))

    # -- documents ------------------------------------------------------------------------------------
    def owner(self, value: Any) -> str | None:
        """The set a key value routes to, or None for a missing / non-integer key (or a negative residue)."""
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return self.owners.get(server_residue(value, self.modulus))

    def half_filter(self, key: str, set_name: str) -> dict[str, Any]:
        """Documents that belong to `set_name`: an integer key whose residue the set owns.

        `$type`/`$mod` also match array elements, so arrays are excluded explicitly: a key of [1] is unclaimed.
        """
        residues = self.residues(set_name)
        if not residues:
            return {"_id": {"$exists": False}}  # matches nothing: the set owns no residue
        mods = [{key: {"$mod": [self.modulus, r]}} for r in residues]
        residue = mods[0] if len(mods) == 1 else {"$or": mods}
        return {"$and": [{key: {"$type": INTEGER_TYPES}}, residue, {key: {"$not": {"$type": "array"}}}]}

    def unclaimed_filter(self, key: str) -> dict[str, Any]:
        """Documents no set can claim: key missing, not an integer, or (negative) matching no residue."""
        return {"$nor": [self.half_filter(key, s) for s in self.sets]}

    # -- pinning ----------------------------------------------------------------------------------------
    def pin(self) -> dict[str, Any]:
        """The routing as the run pins it at its start (JSON, canonical): any later difference is refused."""
        return {"modulus": self.modulus, "owners": {str(r): self.owners[r] for r in sorted(self.owners)},
                "default_key": self.default_key,
                "databases": {db: self.databases[db] for db in sorted(self.databases)},
                "collections": {ns: self.collections[ns] for ns in sorted(self.collections)},
                "exclude": sorted(self.exclude)}

    def differences(self, pinned: dict[str, Any]) -> list[str]:
        """Human-readable differences between this routing and a pinned one (empty when equal)."""
        mine = self.pin()
        out = []
        for field_name in sorted(set(mine) | set(pinned)):
            if mine.get(field_name) != pinned.get(field_name):
                out.append(f"routing.{field_name}: pinned {pinned.get(field_name)!r}, split.yaml now says "
                           f"{mine.get(field_name)!r}")
        return out
