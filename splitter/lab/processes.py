"""Lab process facts by pid (never by name): is it alive, which port, and a last-resort stop."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


def read_pid(pidfile: Path) -> int | None:
    try:
        text = Path(pidfile).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def mongod_alive(pid: int | None) -> bool:
    """True when pid is a live (non-zombie) mongod."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line for line in status.splitlines() if line.startswith("State:")), "")
    return b"mongod" in cmdline and "Z" not in state.split(":", 1)[-1].split()[:1]


def terminate(pid: int, timeout: float = 60.0) -> bool:
    """SIGTERM (clean shutdown), then SIGKILL after timeout. Returns True once the pid is gone."""
    if not mongod_alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not mongod_alive(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    return not mongod_alive(pid)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0
