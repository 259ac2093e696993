"""sshd per lab host: keys generated under DIR/ssh, one sshd per namespace listening on the host's address.

Touches: starts sshd processes inside the lab's namespaces (pid files under DIR/<host>/sshd.pid).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import subprocess
from pathlib import Path

from splitter.errors import OperationalError
from splitter.lab.netns_net import HOST_NAMES, NetPlan

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> Path | None:
    found = shutil.which("sshd")
    for candidate in ((found,) if found else ()) + SSHD_CANDIDATES:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


class LabSsh:
    """Key material and sshd processes of one netns lab."""

    def __init__(self, root: Path, plan: NetPlan) -> None:
        self.root = root
        self.plan = plan
        self.dir = root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    def host_key(self, host: str) -> Path:
        return self.dir / f"{host}_host_ed25519_key"

    def pidfile(self, host: str) -> Path:
        return self.root / host / "sshd.pid"

    def config_file(self, host: str) -> Path:
        return self.dir / f"{host}_sshd_config"

    def ansible_vars(self) -> dict[str, object]:
        # A short-lived master per host, else every task pays an SSH handshake. Its socket path is short (DIR
        # may be too deep for a unix socket); ServerAlive ends a master cut off by a partition within seconds.
        return {
            "ansible_connection": "ssh",
            "ansible_user": getpass.getuser(),
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_host_key_checking": True,
            "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=15s "
                                f"-o ControlPath={self.control_path_prefix}%C -o ServerAliveInterval=2 "
                                "-o ServerAliveCountMax=3",
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
                                       "-o IdentitiesOnly=yes -o BatchMode=yes",
            "ansible_ssh_timeout": 5,
            "ansible_pipelining": True,
            "ansible_remote_tmp": str(self.root / ".ansible" / "remote"),
        }

    @property
    def control_path_prefix(self) -> str:
        return f"/tmp/{self.plan.prefix}-"

    def stop_masters(self) -> list[int]:
        """SIGTERM this lab's SSH connection masters (found by the lab's own ControlPath prefix)."""
        marker = f"ControlPath={self.control_path_prefix}".encode()
        stopped = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # A master renames itself "ssh: CONTROLPATH [mux]" once it forks, so its argv is that one title.
            title = f"ssh: {self.control_path_prefix}".encode()
            if argv and (argv[0].startswith(title) or (Path(argv[0].decode(errors="replace")).name == "ssh"
                                                       and any(marker in a for a in argv))):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGTERM)
                    stopped.append(int(entry.name))
        return stopped

    def create_keys(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key in (self.client_key, *(self.host_key(h) for h in HOST_NAMES)):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "splitter-lab", "-f", str(key)],
                               check=True, capture_output=True)
        (self.dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.known_hosts.write_text("".join(
            f"{self.plan.address(h)} {' '.join(self.host_key(h).with_suffix('.pub').read_text().split()[:2])}\n"
            for h in HOST_NAMES))

    def start(self, host: str) -> None:
        sshd = find_sshd()
        if sshd is None:
            raise OperationalError("sshd not found", hint="apt-get install -y openssh-server")
        (self.root / host).mkdir(parents=True, exist_ok=True)
        self.config_file(host).write_text("\n".join([
            f"ListenAddress {self.plan.address(host)}:22",
            f"HostKey {self.host_key(host)}",
            f"PidFile {self.pidfile(host)}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"AllowUsers {getpass.getuser()}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "UseDNS no",
            "StrictModes no",  # DIR may sit under a world-readable temp directory
            "MaxStartups 50",
            "LogLevel ERROR",
            "",
        ]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        result = subprocess.run(["ip", "netns", "exec", self.plan.namespace(host), str(sshd), "-f",
                                 str(self.config_file(host)), "-E", str(self.root / host / "sshd.log")],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OperationalError(f"sshd on {host} did not start: {result.stderr.strip()}")
