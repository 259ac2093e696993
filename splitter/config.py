"""split.yaml: the operator's description of the split, validated up front (BadInput on any problem)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from splitter.errors import BadInput
from splitter.routing import Routing

HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound="FileConfig")


def parse_duration(text: str | float | int) -> float:
    """'90s', '5m', '1.5h', 30 -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h)")
    factor = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return float(match.group(1)) * factor


def _valid_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_valid_duration)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(Strict):
    name: str = Field(description="inventory host name")
    host: str = Field(description="host:port exactly as in the replica-set config")

    @field_validator("host")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not HOST_PORT.match(value):
            raise ValueError(f"{value!r} is not host:port")
        return value


class Arbiter(Member):
    dbpath: str


class SourceSet(Strict):
    name: str
    members: list[Member] = Field(min_length=4, max_length=4)
    keep: list[str] = Field(min_length=2, max_length=2)
    move: list[str] = Field(min_length=2, max_length=2)

    @model_validator(mode="after")
    def _keep_and_move(self) -> SourceSet:
        names = [m.name for m in self.members]
        hosts = [m.host for m in self.members]
        if len(set(names)) != len(names) or len(set(hosts)) != len(hosts):
            raise ValueError("members must have distinct names and hosts")
        unknown = [n for n in self.keep + self.move if n not in names]
        if unknown:
            raise ValueError(f"keep/move name {', '.join(unknown)}, not listed in members ({', '.join(names)})")
        if set(self.keep) & set(self.move) or len(set(self.keep + self.move)) != 4:
            raise ValueError("keep and move must together name each of the four members exactly once")
        return self


class TargetSet(Strict):
    name: str


class Arbiters(Strict):
    source: Arbiter = Field(description="arbiter added to the source set")
    target: Arbiter = Field(description="arbiter of the new set")


class Gate(Strict):
    command: str | None = Field(default=None, description="shell command whose success confirms the gate")
    poll: Duration = "5s"


class Gates(Strict):
    deploy_client_v1: Gate = Field(default_factory=Gate, alias="deploy-client-v1")
    deploy_client_v2: Gate = Field(default_factory=Gate, alias="deploy-client-v2")
    quiet_period: Duration = Field(default="5s", description="no write of the new set's half for this long")
    fence_max_lag: Duration = Field(default="10s", description="fence only once the stream reaches the old owner's "
                                    "last write within this (the fence holds the half's writes about that long)")
    fence_max_wait: Duration = Field(default="30m", description="give up, nothing fenced, when the stream has not "
                                     "come that close within this")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Credentials(Strict):
    username_env: str | None = None
    username_file: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    auth_source: str = "admin"
    tls_ca_file: str | None = None


class Planning(Strict):
    expected_duration: Duration = Field(default="2h", description="how long the split may take, for the oplog check")
    min_free_disk_fraction: float = Field(default=0.10, ge=0, le=1,
                                          description="below this share of the filesystem free: a warning")
    min_free_disk_vs_data: float = Field(default=1.0, ge=0, description="refuse when, besides, free space is "
                                         "below this multiple of the node's data on disk")
    max_member_lag: Duration = "10s"
    default_write_concern: dict = Field(default_factory=lambda: {"w": "majority"})
    anchor_timeout: Duration = Field(default="10m", description="how long rewrite-replset-config waits for rs1's "
                                     "majority commit point to reach the moving nodes' oplog ends")
    target_sync_timeout: Duration = Field(default="10m", description="how long start-arbiter-rs2 waits for every "
                                          "rs2 data node and rs2's majority commit point to reach the split optime")


class Acknowledge(Strict):
    """Risks the operator has read about and accepts; preflight warns instead of refusing."""

    unique_indexes: list[str] = Field(default_factory=list, description="'db.coll:index_name' of unique indexes "
                                      "that do not contain the routing key")

    @field_validator("unique_indexes")
    @classmethod
    def _shape(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if ":" not in v or "." not in v.split(":", 1)[0]]
        if bad:
            raise ValueError(f"{', '.join(bad)}: write each as database.collection:index_name")
        return value


class Hooks(Strict):
    dir: str | None = Field(default=None, description="directory of hook programs (relative to this file); "
                            "none: no hooks")
    timeout: Duration = Field(default="30s", description="a hook still running after this is killed")


class FileConfig(Strict):
    """What every config file has: inventory, state dir, credentials, hooks, and paths relative to itself."""

    inventory: str
    state_dir: str = ".splitter-state"
    credentials: Credentials = Field(default_factory=Credentials)
    hooks: Hooks = Field(default_factory=Hooks)
    config_path: Annotated[str, Field(exclude=True)] = ""

    def resolve(self, path: str) -> Path:
        """Paths in the file are relative to the file's own directory."""
        base = Path(self.config_path).parent if self.config_path else Path.cwd()
        p = Path(path).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    @property
    def state_path(self) -> Path:
        return self.resolve(self.state_dir)

    @property
    def inventory_path(self) -> Path:
        return self.resolve(self.inventory)

    @property
    def hooks_path(self) -> Path | None:
        return self.resolve(self.hooks.dir) if self.hooks.dir else None


class SplitConfig(FileConfig):
    source: SourceSet
    target: TargetSet
    arbiters: Arbiters
    routing: Routing
    gates: Gates = Field(default_factory=Gates)
    planning: Planning = Field(default_factory=Planning)
    acknowledge: Acknowledge = Field(default_factory=Acknowledge)

    @model_validator(mode="after")
    def _names(self) -> SplitConfig:
        if self.source.name == self.target.name:
            raise ValueError("target.name must differ from source.name")
        hosts = [m.host for m in self.source.members] + [self.arbiters.source.host, self.arbiters.target.host]
        if len(set(hosts)) != len(hosts):
            raise ValueError("arbiter hosts must differ from each other and from every member")
        names = [m.name for m in self.source.members] + [self.arbiters.source.name, self.arbiters.target.name]
        if len(set(names)) != len(names):
            raise ValueError("arbiter names must differ from each other and from every member")
        self._routing_names_the_sets()
        return self

    def _routing_names_the_sets(self) -> None:
        """The routing must give residues to both sets of this split; the short form names exactly those two."""
        pair = [self.source.name, self.target.name]
        named = list(self.routing.remainders or {})
        strangers = [n for n in named if n not in pair]
        if self.routing.remainders is not None and strangers:
            raise ValueError(f"routing.remainders names {', '.join(strangers)}, which is neither source.name "
                             f"({pair[0]}) nor target.name ({pair[1]}); name exactly those two sets")
        empty = [n for n in pair if not self.routing.residues(n)]
        if empty:
            raise ValueError(f"routing gives no residue to {', '.join(empty)}: the split moves the residues owned by "
                             f"target.name ({pair[1]}) and keeps those of source.name ({pair[0]}); "
                             f"routing sets are {', '.join(self.routing.sets)}")

    # -- derived views ------------------------------------------------------------------------------
    def member(self, name: str) -> Member:
        for m in [*self.source.members, self.arbiters.source, self.arbiters.target]:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def keep_members(self) -> list[Member]:
        return [self.member(n) for n in self.source.keep]

    @property
    def move_members(self) -> list[Member]:
        return [self.member(n) for n in self.source.move]

    def partner(self, set_name: str) -> str:
        """The other set of this split (source <-> target)."""
        if set_name == self.source.name:
            return self.target.name
        if set_name == self.target.name:
            return self.source.name
        raise KeyError(set_name)


def _format_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; the README's \"The config file\" shows every key)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{where}: {msg}")
    return f"{path}: invalid config:\n  " + "\n  ".join(lines)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; `owners: {0: rs1, 0: rs2}` must be refused instead."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first {seen[key]!r}, then "
                    f"{self.construct_object(value_node, deep=True)!r}): give each key once", key_node.start_mark)
            seen[key] = self.construct_object(value_node, deep=True)
        return super().construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _UniqueKeyLoader.construct_mapping)


def load_model(path: str | Path, model: type[M], example: str) -> M:
    """Read a YAML config file into `model`; every problem becomes one BadInput naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read config {path}: {exc.strerror}", hint=f"pass -c PATH/{example}") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BadInput(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    try:
        return model.model_validate({**data, "config_path": str(path.resolve())})
    except ValidationError as exc:
        raise BadInput(_format_error(path, exc)) from exc


def load_config(path: str | Path) -> SplitConfig:
    """Read and validate split.yaml; every problem becomes one BadInput naming the file and key."""
    path = Path(path)
    return checked_files(path, load_model(path, SplitConfig, "split.yaml"))


def checked_files(path: Path, config: F) -> F:
    """The state dir and hooks dir checks, and credential files resolved relative to the config file."""
    if config.state_path.exists() and not config.state_path.is_dir():
        raise BadInput(f"{path}: state_dir {config.state_path} exists and is not a directory",
                       hint="point state_dir at a directory (it is created if missing)")
    if config.hooks_path is not None and not config.hooks_path.is_dir():
        raise BadInput(f"{path}: hooks.dir {config.hooks_path} is not a directory",
                       hint="create it (hook programs go there, named on-step-done, before-cutover, ...) or remove "
                            "hooks.dir")
    # Credential files, like every path in the file, are relative to the file's own directory.
    creds = config.credentials
    resolved = {k: str(config.resolve(v)) for k in ("username_file", "password_file", "tls_ca_file")
                if (v := getattr(creds, k))}
    return config.model_copy(update={"credentials": creds.model_copy(update=resolved)}) if resolved else config
