"""The nightly schedule: a systemd service + timer (or a cron.d line where there is no systemd).

The unit text comes from the playbook's own templates (playbooks/templates/cleanup.*.j2), rendered here with
plain Jinja for `--print-schedule` and by playbooks/cleanup_schedule.yml on the host, so both show the same
files. Touches nothing itself; `apply_schedule` runs the playbook through the AnsibleAdapter.

Where it runs: on the machine where splitter is installed (the orchestrator), which reaches the sets over the
network like every other command. The unit names this installation's splitter, split.yaml, state directory,
user and working directory, which exist only here; so it is installed only on this machine (`localhost`, or an
inventory host with `ansible_connection: local`), never on a database node (docs/deployment.md).
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from splitter.cleanup.throttle import Window
from splitter.errors import BadInput
from splitter.hosts.ansible_adapter import PLAYBOOK_DIR, AnsibleAdapter, PlaybookResult
from splitter.inventory import load_inventory

PLAYBOOK = "cleanup_schedule.yml"
TEMPLATES = {"service": "cleanup.service.j2", "timer": "cleanup.timer.j2", "cron": "cleanup.cron.j2"}
DEFAULT_UNIT_DIR = "/etc/systemd/system"
DEFAULT_CRON_DIR = "/etc/cron.d"
SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
RUNTIME_SLACK = 900  # the service is stopped (SIGTERM: a clean stop) this long after the window's end


def splitter_command() -> list[str]:
    """How this installation of splitter is started: the venv's console script, else `python -m splitter`."""
    script = Path(sys.executable).parent / "splitter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "splitter"]


@dataclass(frozen=True)
class ScheduleSpec:
    """What the nightly run does: which set, which config, when, with which limits, as whom."""

    set_choice: str
    config_path: Path
    window: Window
    user: str
    workdir: Path
    log_path: Path
    limits: tuple[tuple[str, str], ...] = ()  # ("--max-docs", "100000"), ... as given on the command line
    command: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        return "splitter-cleanup-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.set_choice)

    def argv(self) -> list[str]:
        base = list(self.command) or splitter_command()
        args = [*base, "cleanup", "-c", str(self.config_path), "--set", self.set_choice, "--window", str(self.window)]
        for option, value in self.limits:
            args += [option, value]
        return args


def systemd_quote(arg: str) -> str:
    """One ExecStart word: double-quoted when needed; `%` and `$` escaped (systemd specifiers, variables)."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if SAFE_ARG.match(arg):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cron_command(spec: ScheduleSpec) -> str:
    """One cron.d command: shell-quoted, `%` escaped (cron turns a bare % into a newline), output to the log."""
    line = f"cd {shlex.quote(str(spec.workdir))} && {shlex.join(spec.argv())} >> {shlex.quote(str(spec.log_path))} 2>&1"
    return line.replace("%", "\\%")


def schedule_vars(spec: ScheduleSpec) -> dict[str, Any]:
    """The playbook's extravars (and the templates' variables)."""
    return {
        "cleanup_unit": spec.unit,
        "cleanup_set": spec.set_choice,
        "cleanup_window": str(spec.window),
        "cleanup_start": f"{spec.window.start:%H:%M}",
        "cleanup_cron_minute": spec.window.start.minute,
        "cleanup_cron_hour": spec.window.start.hour,
        "cleanup_command": " ".join(systemd_quote(a) for a in spec.argv()),
        "cleanup_cron_command": cron_command(spec),
        "cleanup_user": spec.user,
        "cleanup_workdir": str(spec.workdir),
        "cleanup_runtime_max_sec": int(spec.window.length) + RUNTIME_SLACK,
    }


def _environment(playbook_dir: Path) -> jinja2.Environment:
    # Ansible's template module renders with trim_blocks=True and keeps the trailing newline.
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(playbook_dir / "templates")), trim_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def render_units(variables: dict[str, Any], playbook_dir: Path = PLAYBOOK_DIR, unit_dir: str = DEFAULT_UNIT_DIR,
                 cron_dir: str = DEFAULT_CRON_DIR) -> dict[str, str]:
    """path -> content of the files the playbook installs: the service and timer, and the cron fallback."""
    env = _environment(playbook_dir)
    unit = variables["cleanup_unit"]
    paths = {"service": f"{unit_dir}/{unit}.service", "timer": f"{unit_dir}/{unit}.timer",
             "cron": f"{cron_dir}/{unit}"}
    return {paths[kind]: env.get_template(name).render(**variables) for kind, name in TEMPLATES.items()}


def format_schedule(spec: ScheduleSpec, inventory: Path | None = None) -> str:
    """What `--print-schedule` prints: every file, then how to install and remove it."""
    variables = schedule_vars(spec)
    parts = []
    for path, content in render_units(variables).items():
        note = " (only where there is no systemd)" if path.startswith(DEFAULT_CRON_DIR) else ""
        parts.append(f"# ---- {path}{note}\n{content}")
    config = shlex.quote(str(spec.config_path))
    limits = " ".join(f"{o} {shlex.quote(v)}" for o, v in spec.limits)
    base = f"splitter cleanup -c {config} --set {spec.set_choice} --window {spec.window} {limits}".rstrip()
    parts.append(f"# these files run this installation ({spec.argv()[0]}) as {spec.user} in {spec.workdir}:\n"
                 f"# HOST is this machine (localhost), which reaches the sets over the network\n"
                 f"# install: {base} --install-schedule HOST\n"
                 f"# remove:  {base} --remove-schedule HOST\n"
                 f"# (runs {PLAYBOOK} from {PLAYBOOK_DIR} with the inventory {inventory or 'of split.yaml'})\n")
    return "\n".join(parts)


def apply_schedule(adapter: AnsibleAdapter, host: str, spec: ScheduleSpec, *, present: bool = True,
                   overrides: dict[str, Any] | None = None) -> PlaybookResult:
    """Install (present) or remove the units on `host` through the playbook. `overrides` are extra
    extravars, e.g. cleanup_unit_dir / cleanup_use_systemctl for a test."""
    refuse_remote(adapter.inventory, host)
    extravars = {**schedule_vars(spec), "cleanup_state": "present" if present else "absent", **(overrides or {})}
    return adapter.run(PLAYBOOK, [host], extravars)


LOCAL_NAMES = ("localhost", "127.0.0.1")


def refuse_remote(inventory: Path, host: str) -> None:
    """The schedule names paths of this machine: refuse (BadInput) a host that is not this machine."""
    if host in LOCAL_NAMES:
        return
    hosts = load_inventory(inventory, check=False)
    if host in hosts and hosts[host].vars.get("ansible_connection") == "local":
        return
    raise BadInput(f"the nightly schedule runs where splitter is installed (its unit names this machine's "
                   f"splitter, split.yaml and state directory); {host} is not this machine",
                   hint="install it here: --install-schedule localhost")
