"""Auth and TLS on real mongod: `lab up --auth [--tls]`, then the whole split, verify and cleanup with credentials
read from files named in split.yaml. The password must never show up in any process's arguments or environment,
in any file of the lab (logs, audit log, state, Ansible artifacts, inventory, split.yaml, dbpaths), or in the
tool's output; the state directory is 0700 and its files 0600."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from splitter.lab.lab import Lab
from splitter.lab.layout import DATA_NODES
from tests.helpers import run_cli

pytestmark = pytest.mark.mongod


class ProcSampler:
    """Reads /proc/*/cmdline and /proc/*/environ of every process every `interval` seconds, in a thread."""

    def __init__(self, needles: list[bytes], interval: float = 0.05) -> None:
        self.needles = needles
        self.interval = interval
        self.rounds = 0
        self.cmdlines: set[bytes] = set()
        self.hits: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            for what in ("cmdline", "environ"):
                try:
                    data = Path(entry.path, what).read_bytes()
                except OSError:  # gone already, or not ours to read
                    continue
                if what == "cmdline" and data:
                    self.cmdlines.add(data)
                if any(needle in data for needle in self.needles):
                    self.hits.append((f"{entry.name}/{what}", data.replace(b"\0", b" ")[:300]))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self.rounds += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def saw(self, fragment: bytes) -> bool:
        return any(fragment in c for c in self.cmdlines)


def files_containing(root: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """For each needle, every file under root (dbpaths included, read in chunks) that contains it."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    overlap = max(len(n) for n in needles.values())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        hit: set[str] = set()
        with path.open("rb") as handle:
            tail = b""
            while chunk := handle.read(1 << 22):
                hit.update(name for name, needle in needles.items() if needle in tail + chunk)
                tail = chunk[-overlap:]
        for name in sorted(hit):
            found[name].append(str(path.relative_to(root)))
    return found


def wrong_modes(state_dir: Path) -> list[str]:
    bad = [f"{state_dir}: {oct(stat.S_IMODE(state_dir.stat().st_mode))}"] \
        if stat.S_IMODE(state_dir.stat().st_mode) != 0o700 else []
    for path in state_dir.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if (path.is_dir() and mode != 0o700) or (path.is_file() and mode != 0o600):
            bad.append(f"{path.relative_to(state_dir)}: {oct(mode)}")
    return bad


def node1(lab: Lab, **options: object) -> MongoClient:
    return MongoClient(lab.layout.host("node1").host, directConnection=True, serverSelectionTimeoutMS=3000,
                       **options)


def test_auth_split_verify_cleanup_never_leak_the_password(lab_factory) -> None:
    lab = lab_factory(auth=True)
    files = lab.security.files
    password, key = files.password(), files.key()
    assert len(password) >= 32 and password not in lab.layout.config_path.read_text()
    assert Lab.existing(lab.layout.root).security.auth
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.keyfile.stat().st_mode) == 0o400

    with node1(lab) as anonymous:
        with pytest.raises(OperationFailure) as refused:
            anonymous.app.users.count_documents({})
        assert refused.value.code == 13  # Unauthorized
    with node1(lab, username=files.username(), password="not-" + password) as wrong:
        with pytest.raises(OperationFailure) as refused:
            wrong.admin.command("ping")
        assert refused.value.code == 18  # AuthenticationFailed
    with node1(lab, **lab.client_options()) as admin:
        assert admin.app.users.count_documents({}) > 0

    config = str(lab.layout.config_path)
    outputs = []
    has_cleanup = importlib.util.find_spec("splitter.cli.cleanup_cmd") is not None
    with ProcSampler([password.encode(), key.encode()]) as sampler:
        result = run_cli("run", "-c", config, "--yes")
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "split complete" in result.stdout
        result = run_cli("verify", "-c", config, "--json")
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["ok"] is True
        if has_cleanup:
            result = run_cli("cleanup", "-c", config, "--set", "both", "--max-docs", "200", "--json")
            outputs.append(result.stdout + result.stderr)
            assert result.returncode == 0, result.stdout + result.stderr
        result = run_cli("status", "-c", config, "--json")
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
        assert {s["state"] for s in json.loads(result.stdout)["steps"]} == {"done"}

    states = {p.name: p.state for p in lab.processes()}
    assert sorted(states[n] for n in ("node3", "node4", "arbiter2")) == ["rs2/ARBITER", "rs2/PRIMARY",
                                                                         "rs2/SECONDARY"]
    # The sampler really watched: it saw the tool, its playbooks and the mongods they started.
    assert sampler.rounds > 100
    assert sampler.saw(b"splitter\0run") and sampler.saw(b"ansible-playbook") and sampler.saw(b"--config\0")
    assert sampler.hits == [], sampler.hits[:3]
    assert not any(password in out or key in out for out in outputs)

    assert files_containing(lab.layout.root, {"password": password.encode(), "key": key.encode()}) == {
        "password": ["secrets/password"], "key": ["secrets/keyfile"]}
    state_dir = lab.layout.root / "state"
    assert (state_dir / "audit.jsonl").is_file() and (state_dir / "state.json").is_file()
    assert any((state_dir / "ansible").rglob("*")), "the tool's Ansible artifacts should be under state/ansible"
    assert wrong_modes(state_dir) == []


def test_tls_lab_refuses_clients_without_the_ca_and_plans_with_it(lab_factory) -> None:
    lab = lab_factory(auth=True, tls=True)
    files = lab.security.files
    config_text = lab.layout.config_path.read_text()
    assert str(files.ca_file) in config_text and files.password() not in config_text

    with node1(lab) as plain, pytest.raises(ServerSelectionTimeoutError):
        plain.admin.command("hello")  # requireTLS
    with node1(lab, tls=True) as unverified, pytest.raises(ServerSelectionTimeoutError) as refused:
        unverified.admin.command("hello")  # self-signed: unknown without the lab's CA
    assert "certificate" in str(refused.value).lower()
    with node1(lab, **lab.client_options()) as client:
        assert client.app.users.count_documents({}) > 0

    states = json.loads(run_cli("lab", "status", "--dir", str(lab.layout.root), "--json").stdout)
    assert sorted(p["state"] for p in states if p["name"] in DATA_NODES) == [
        "rs1/PRIMARY", "rs1/SECONDARY", "rs1/SECONDARY", "rs1/SECONDARY"]

    result = run_cli("plan", "-c", str(lab.layout.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert files.password() not in result.stdout + result.stderr
    found = files_containing(lab.layout.root, {"password": files.password().encode()})
    assert found == {"password": ["secrets/password"]}  # also after `updateUser` on a restored snapshot
