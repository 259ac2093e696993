"""docker-compose.yml and inventory/docker.yml describe the same six mongods; the example inventories load.

No Docker engine is needed: the files are parsed with PyYAML and compared. `compose_inventory_problems` returns
every disagreement as a sentence, so the mutation tests can check that a broken copy is reported.
"""

from __future__ import annotations

import copy
import json
import posixpath
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from splitter.config import load_config
from splitter.inventory import load_inventory
from splitter.lab.layout import ARBITERS, DATA_NODES, SOURCE_SET, LabLayout

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKER_INVENTORY = ROOT / "inventory" / "docker.yml"
PRODUCTION_INVENTORY = ROOT / "inventory" / "production.example.yml"
TEMPLATE = ROOT / "playbooks" / "templates" / "mongod.conf.j2"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
DBPATH = "/data/db"
LOOPBACK = "127.0.0.1"


# -- parsing helpers ---------------------------------------------------------------------------------------------
def _render(value: Any, inventory_dir: Path) -> str:
    """Render the only magic variable the docker inventory uses in paths."""
    return jinja2.Template(str(value)).render(inventory_dir=str(inventory_dir))


def _host_path(value: Any, inventory_dir: Path) -> Path:
    return Path(_render(value, inventory_dir)).resolve()


def _ports(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host_ip, published, container) for each published port, short or long syntax."""
    result = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            result.append((str(entry.get("host_ip", "")), int(entry.get("published", 0)), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 3:
            result.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            result.append(("", int(parts[0]), int(parts[1])))
        else:
            result.append(("", 0, int(parts[0])))
    return result


def _mounts(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, source, target) for each mount; kind is 'volume' (named) or 'bind'."""
    result = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):
            kind = "bind" if entry.get("type") == "bind" else "volume"
            result.append((kind, str(entry.get("source", "")), str(entry["target"])))
            continue
        source, target = str(entry).split(":")[:2]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        result.append((kind, source, target))
    return result


def _config_path_in_container(service: Mapping[str, Any]) -> str | None:
    command = service.get("command") or []
    if isinstance(command, str):
        command = command.split()
    for i, arg in enumerate(command):
        if arg in ("--config", "-f") and i + 1 < len(command):
            return str(command[i + 1])
        if str(arg).startswith("--config="):
            return str(arg).split("=", 1)[1]
    return None


def _inventory_groups(inventory: Mapping[str, Any]) -> dict[str, set[str]]:
    children = (inventory.get("all") or {}).get("children") or {}
    return {name: set((group or {}).get("hosts") or {}) for name, group in children.items()}


# -- the checker -------------------------------------------------------------------------------------------------
def compose_inventory_problems(compose_path: Path, inventory_path: Path) -> list[str]:
    """Every way the compose file and the docker inventory disagree (empty when they agree)."""
    problems: list[str] = []
    compose = yaml.safe_load(compose_path.read_text()) or {}
    raw_inventory = yaml.safe_load(inventory_path.read_text()) or {}
    hosts = {name: host.vars for name, host in load_inventory(inventory_path).items()}
    inventory_dir = inventory_path.parent
    compose_dir = compose_path.parent
    services: dict[str, Any] = compose.get("services") or {}
    declared_volumes = set(compose.get("volumes") or {})
    expected = set(DATA_NODES + ARBITERS)
    layout = {h.name: h for h in LabLayout(Path("/unused")).hosts}

    if set(services) != expected:
        problems.append(f"compose services are {sorted(services)}, expected {sorted(expected)}")
    if set(hosts) != expected:
        problems.append(f"inventory hosts are {sorted(hosts)}, expected {sorted(expected)}")
    groups = _inventory_groups(raw_inventory)
    if groups.get("data_nodes") != set(DATA_NODES) or groups.get("arbiters") != set(ARBITERS):
        problems.append(f"inventory groups are {({k: sorted(v) for k, v in groups.items()})}, expected "
                        f"data_nodes={list(DATA_NODES)} and arbiters={list(ARBITERS)}")

    dbpath_volumes: dict[str, str] = {}
    for name in sorted(expected & set(services) & set(hosts)):
        service, hvars = services[name], hosts[name]
        where = f"{name}:"
        port = int(hvars["mongod_port"])
        if hvars.get("mongod_manager") != "docker":
            problems.append(f"{where} inventory mongod_manager is {hvars.get('mongod_manager')!r}, expected 'docker'")
        if hvars.get("compose_service") != name:
            problems.append(f"{where} inventory compose_service is {hvars.get('compose_service')!r}, expected {name!r}")
        if _host_path(hvars.get("compose_file", ""), inventory_dir) != compose_path.resolve():
            problems.append(f"{where} inventory compose_file {hvars.get('compose_file')!r} is not {compose_path}")
        if service.get("hostname") != name:
            problems.append(f"{where} compose hostname is {service.get('hostname')!r}, expected {name!r}")
        if not str(service.get("image", "")).startswith("mongo:"):
            problems.append(f"{where} compose image {service.get('image')!r} is not an official mongo image")
        if port != layout[name].port:
            problems.append(f"{where} inventory mongod_port {port} differs from the write-up's {layout[name].port}")

        # ports: the mongod port and (data nodes) the maintenance port, same inside and out, loopback only
        ports = _ports(service)
        wanted = {port: "mongod_port"}
        if "mongod_maintenance_port" in hvars:
            wanted[int(hvars["mongod_maintenance_port"])] = "mongod_maintenance_port"
        elif name in DATA_NODES:
            problems.append(f"{where} inventory lacks mongod_maintenance_port")
        for ip, published, container in ports:
            if ip != LOOPBACK:
                problems.append(f"{where} compose port {published}:{container} is published on {ip or 'all'} "
                                f"interfaces, expected {LOOPBACK} only")
            if published != container:
                problems.append(f"{where} compose publishes container port {container} as {published}; they must "
                                "be equal so replica-set host names work inside and outside the compose network")
            if container not in wanted:
                problems.append(f"{where} compose publishes port {container}, which the inventory does not name")
        for wanted_port, var in wanted.items():
            if not any(published == container == wanted_port for _, published, container in ports):
                problems.append(f"{where} inventory {var} {wanted_port} is not published as "
                                f"{LOOPBACK}:{wanted_port}:{wanted_port} in the compose file")

        # dbpath: one named volume of its own, declared at top level
        mounts = _mounts(service)
        at_dbpath = [(kind, source) for kind, source, target in mounts if target.rstrip("/") == DBPATH]
        if hvars.get("mongod_dbpath") != DBPATH:
            problems.append(f"{where} inventory mongod_dbpath is {hvars.get('mongod_dbpath')!r}, expected {DBPATH}")
        if len(at_dbpath) != 1 or at_dbpath[0][0] != "volume":
            problems.append(f"{where} compose must mount exactly one named volume at {DBPATH}, found {at_dbpath}")
        else:
            volume = at_dbpath[0][1]
            if volume in dbpath_volumes:
                problems.append(f"{where} volume {volume!r} is also the dbpath of {dbpath_volumes[volume]}")
            dbpath_volumes[volume] = name
            if volume not in declared_volumes:
                problems.append(f"{where} volume {volume!r} is not declared under the top-level volumes:")
        log = str(hvars.get("mongod_log", ""))
        if not posixpath.isabs(log) or not (posixpath.dirname(log) + "/").startswith(DBPATH + "/"):
            problems.append(f"{where} inventory mongod_log {log!r} must be a file path inside the container, "
                            f"under the {DBPATH} volume")

        # config: the bind-mounted directory is where the playbook renders mongod_conf
        in_container = _config_path_in_container(service)
        if in_container is None:
            problems.append(f"{where} compose command does not pass --config")
            continue
        binds = [(source, target) for kind, source, target in mounts
                 if kind == "bind" and target.rstrip("/") == posixpath.dirname(in_container)]
        conf = _host_path(hvars.get("mongod_conf", ""), inventory_dir)
        if len(binds) != 1:
            problems.append(f"{where} compose must bind-mount one directory at {posixpath.dirname(in_container)} "
                            f"(the directory of --config {in_container})")
            continue
        source_dir = (compose_dir / binds[0][0]).resolve()
        if conf.parent != source_dir:
            problems.append(f"{where} inventory mongod_conf {conf} is not in the bind-mounted directory {source_dir}")
        if conf.name != posixpath.basename(in_container):
            problems.append(f"{where} inventory mongod_conf is named {conf.name}, the container reads "
                            f"{posixpath.basename(in_container)}")
        placeholder = source_dir / posixpath.basename(in_container)
        if not placeholder.is_file():
            problems.append(f"{where} no committed placeholder config {placeholder}")
            continue
        rendered = yaml.safe_load(placeholder.read_text()) or {}
        if (rendered.get("net") or {}).get("port") != port:
            problems.append(f"{where} placeholder {placeholder} has net.port {(rendered.get('net') or {}).get('port')}"
                            f", expected {port}")
        if name in DATA_NODES and (rendered.get("replication") or {}).get("replSetName") != SOURCE_SET:
            problems.append(f"{where} placeholder {placeholder} does not name replSetName {SOURCE_SET}")
    return problems


# -- tests -------------------------------------------------------------------------------------------------------
def test_compose_and_docker_inventory_agree() -> None:
    assert compose_inventory_problems(COMPOSE, DOCKER_INVENTORY) == []


def test_ports_follow_the_write_up() -> None:
    hosts = load_inventory(DOCKER_INVENTORY)
    assert {n: h.port for n, h in hosts.items()} == {
        "node1": 27017, "node2": 27027, "node3": 27037, "node4": 27047, "arbiter1": 27057, "arbiter2": 27067}
    assert {n: hosts[n].maintenance_port for n in DATA_NODES} == {
        "node1": 27022, "node2": 27032, "node3": 27042, "node4": 27052}
    assert {h.connect_host for h in hosts.values()} == {LOOPBACK}


@pytest.mark.parametrize(("path", "manager"), [(DOCKER_INVENTORY, "docker"), (PRODUCTION_INVENTORY, "systemd")])
def test_inventory_loads(path: Path, manager: str) -> None:
    hosts = load_inventory(path)
    assert set(hosts) == set(DATA_NODES + ARBITERS)
    assert {h.manager for h in hosts.values()} == {manager}
    groups = _inventory_groups(yaml.safe_load(path.read_text()))
    assert groups == {"data_nodes": set(DATA_NODES), "arbiters": set(ARBITERS)}


def test_production_example_is_ssh_and_systemd() -> None:
    hosts = load_inventory(PRODUCTION_INVENTORY)
    for host in hosts.values():
        assert host.vars["ansible_connection"] == "ssh"
        assert host.vars["mongod_service"] and host.vars["mongod_become"] is True
        assert host.vars["mongod_keyfile"].startswith("/")
        assert host.vars["ansible_host"].endswith(".example.internal")


def test_split_yaml_in_the_docs_matches_the_docker_inventory(tmp_path: Path) -> None:
    blocks = DEPLOYMENT_DOC.read_text().split("```yaml\n")[1:]
    example = next(b.split("```")[0] for b in blocks if b.startswith("# split.yaml for the Docker Compose lab"))
    (tmp_path / "split.yaml").write_text(example)
    config = load_config(tmp_path / "split.yaml")
    assert (ROOT / config.inventory).resolve() == DOCKER_INVENTORY.resolve()
    hosts = load_inventory(DOCKER_INVENTORY)
    members = [*config.source.members, config.arbiters.source, config.arbiters.target]
    assert {m.name: m.host for m in members} == {n: f"{n}:{h.port}" for n, h in hosts.items()}
    for arbiter in (config.arbiters.source, config.arbiters.target):
        assert arbiter.dbpath == hosts[arbiter.name].vars["mongod_dbpath"]


def _render_config(host_vars: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string(TEMPLATE.read_text()).render(**host_vars, **extra)
    data = yaml.safe_load(text)
    assert isinstance(data, dict), text
    return data


@pytest.mark.parametrize("name", ["node3", "arbiter2"])
def test_template_renders_replset_mode_for_docker(name: str) -> None:
    host = load_inventory(DOCKER_INVENTORY)[name]
    conf = _render_config(host.vars, mongod_mode="replset", replset_name="rs2")
    assert conf["net"] == {"port": host.port, "bindIp": "0.0.0.0"}
    assert conf["replication"]["replSetName"] == "rs2"
    assert conf["storage"]["dbPath"] == DBPATH
    assert conf["systemLog"]["path"] == host.vars["mongod_log"]
    assert "processManagement" not in conf  # mongod must stay in the foreground as the container's process


def test_template_renders_standalone_mode_for_docker() -> None:
    host = load_inventory(DOCKER_INVENTORY)["node3"]
    conf = _render_config(host.vars, mongod_mode="standalone")
    assert conf["net"] == {"port": 27042, "bindIp": "0.0.0.0"}
    assert "replication" not in conf
    assert conf["setParameter"]["disableLogicalSessionCacheRefresh"] is True


# -- mutations: a broken copy must be reported -------------------------------------------------------------------
def _service(compose: dict, name: str) -> dict:
    return compose["services"][name]


def _host(inventory: dict, group: str, name: str) -> dict:
    return inventory["all"]["children"][group]["hosts"][name]


def _publish_other_port(compose: dict, inventory: dict) -> None:
    _service(compose, "node3")["ports"][0] = "127.0.0.1:27038:27037"


def _change_inventory_port(compose: dict, inventory: dict) -> None:
    _host(inventory, "data_nodes", "node2")["mongod_port"] = 27028


def _drop_maintenance_port(compose: dict, inventory: dict) -> None:
    _service(compose, "node4")["ports"] = _service(compose, "node4")["ports"][:1]


def _publish_on_all_interfaces(compose: dict, inventory: dict) -> None:
    _service(compose, "arbiter1")["ports"][0] = "27057:27057"


def _share_a_volume(compose: dict, inventory: dict) -> None:
    _service(compose, "node2")["volumes"][0] = "node1-data:/data/db"


def _undeclared_volume(compose: dict, inventory: dict) -> None:
    del compose["volumes"]["arbiter2-data"]


def _wrong_hostname(compose: dict, inventory: dict) -> None:
    _service(compose, "node1")["hostname"] = "mongo1"


def _wrong_config_dir(compose: dict, inventory: dict) -> None:
    _host(inventory, "arbiters", "arbiter1")["mongod_conf"] = "{{ inventory_dir }}/../docker/config/node1/mongod.conf"


def _wrong_compose_service(compose: dict, inventory: dict) -> None:
    _host(inventory, "data_nodes", "node4")["compose_service"] = "node3"


def _missing_service(compose: dict, inventory: dict) -> None:
    del compose["services"]["arbiter2"]


MUTATIONS: dict[str, tuple[Callable[[dict, dict], None], str]] = {
    "published port differs": (_publish_other_port, "node3: compose publishes container port 27037 as 27038"),
    "inventory port differs": (_change_inventory_port, "node2: inventory mongod_port 27028 is not published"),
    "maintenance port missing": (_drop_maintenance_port, "node4: inventory mongod_maintenance_port 27052"),
    "not loopback": (_publish_on_all_interfaces, "arbiter1: compose port 27057:27057 is published on all"),
    "shared volume": (_share_a_volume, "node2: volume 'node1-data' is also the dbpath of node1"),
    "undeclared volume": (_undeclared_volume, "arbiter2: volume 'arbiter2-data' is not declared"),
    "hostname": (_wrong_hostname, "node1: compose hostname is 'mongo1'"),
    "config dir": (_wrong_config_dir, "arbiter1: inventory mongod_conf"),
    "compose_service": (_wrong_compose_service, "node4: inventory compose_service is 'node3'"),
    "missing service": (_missing_service, "compose services are"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_checker_reports_a_disagreement(tmp_path: Path, mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    compose = copy.deepcopy(yaml.safe_load(COMPOSE.read_text()))
    inventory = copy.deepcopy(yaml.safe_load(DOCKER_INVENTORY.read_text()))
    mutate(compose, inventory)
    (tmp_path / "inventory").mkdir()
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    compose_copy, inventory_copy = tmp_path / "docker-compose.yml", tmp_path / "inventory" / "docker.yml"
    compose_copy.write_text(yaml.safe_dump(compose, sort_keys=False))
    inventory_copy.write_text(yaml.safe_dump(inventory, sort_keys=False))

    problems = compose_inventory_problems(compose_copy, inventory_copy)

    assert any(expected in p for p in problems), problems


def test_unchanged_copy_has_no_problems(tmp_path: Path) -> None:
    (tmp_path / "inventory").mkdir()
    shutil.copytree(ROOT / "docker", tmp_path / "docker")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(DOCKER_INVENTORY, tmp_path / "inventory" / "docker.yml")
    assert compose_inventory_problems(tmp_path / "docker-compose.yml", tmp_path / "inventory" / "docker.yml") == []
