"""Files through which one command hands something to another that runs: gate confirmations and requests.

A confirmation (`splitter confirm GATE`) or a request (`splitter switch|reverse|finalize`) is a small JSON file
written atomically; the running `splitter run` takes it (reads and deletes it) when it acts on it, so that a
confirmation is used once and never carries over to a later wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from splitter.store.atomic import atomic_write_json, now_iso, read_json
from splitter.store.files import StateFiles, ensure_private_dir


def _write(files: StateFiles, path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    files.ensure()
    ensure_private_dir(path.parent)
    record = {"at": now_iso(), **payload}
    atomic_write_json(path, record)
    return record


def write_confirmation(files: StateFiles, gate_id: str, by: str) -> dict[str, Any]:
    return _write(files, files.gate_confirmation(gate_id), {"gate": gate_id, "by": by})


def read_confirmation(files: StateFiles, gate_id: str) -> dict[str, Any] | None:
    return read_json(files.gate_confirmation(gate_id))


def consume_confirmation(files: StateFiles, gate_id: str) -> None:
    files.gate_confirmation(gate_id).unlink(missing_ok=True)


def clear_confirmations(files: StateFiles) -> None:
    if files.gates_dir.is_dir():
        for path in files.gates_dir.glob("*.confirmed"):
            path.unlink()


def write_request(files: StateFiles, verb: str, by: str, **detail: Any) -> dict[str, Any]:
    return _write(files, files.request(verb), {"request": verb, "by": by, **detail})


def read_request(files: StateFiles, verb: str) -> dict[str, Any] | None:
    return read_json(files.request(verb))


def consume_request(files: StateFiles, verb: str) -> None:
    files.request(verb).unlink(missing_ok=True)
