"""The nightly schedule: rendered units, and the playbook installing / removing them in a temp directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from splitter.cleanup.schedule import (
    ScheduleSpec,
    apply_schedule,
    render_units,
    schedule_vars,
    systemd_quote,
)
from splitter.cleanup.throttle import Window
from splitter.cleanup.worker import DEFAULT_BATCH_SIZE
from splitter.cli.cleanup_cmd import cleanup
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.lab.layout import LabLayout

HOST = "sched1"


def spec(tmp_path: Path, **kwargs) -> ScheduleSpec:
    values = dict(set_choice="rs2", config_path=tmp_path / "conf dir" / "split.yaml",
                  window=Window.parse("23:30-04:00"),
                  user="mongo", workdir=tmp_path, log_path=tmp_path / "state" / "cleanup-rs2.log",
                  limits=(("--max-docs", "50000"), ("--sleep", "30%")), command=("/opt/splitter/bin/splitter",))
    values.update(kwargs)
    return ScheduleSpec(**values)


def test_units_render_the_command_window_and_limits(tmp_path: Path) -> None:
    units = render_units(schedule_vars(spec(tmp_path)))
    service = units["/etc/systemd/system/splitter-cleanup-rs2.service"]
    timer = units["/etc/systemd/system/splitter-cleanup-rs2.timer"]
    cron = units["/etc/cron.d/splitter-cleanup-rs2"]
    config = tmp_path / "conf dir" / "split.yaml"
    assert (f'ExecStart=/opt/splitter/bin/splitter cleanup -c "{config}" --set rs2 --window 23:30-04:00 '
            "--max-docs 50000 --sleep 30%%\n") in service  # quoted path; % escaped for systemd
    assert "User=mongo\n" in service and f"WorkingDirectory={tmp_path}\n" in service
    assert f"RuntimeMaxSec={int(4.5 * 3600) + 900}\n" in service
    assert "OnCalendar=*-*-* 23:30:00\n" in timer and "Unit=splitter-cleanup-rs2.service\n" in timer
    assert "WantedBy=timers.target" in timer
    line = cron.strip().splitlines()[-1]
    assert line.startswith("30 23 * * * mongo cd ")
    assert f"'{config}'" in line and "--sleep 30\\%" in line and ">> " in line and "cleanup-rs2.log" in line


def test_systemd_quote() -> None:
    assert systemd_quote("/usr/bin/splitter") == "/usr/bin/splitter"
    assert systemd_quote("a b") == '"a b"'
    assert systemd_quote('say "hi" $HOME 5%') == '"say \\"hi\\" $$HOME 5%%"'


def _inventory(tmp_path: Path, **host_vars) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "cleanup_become": False, **host_vars}}}}))
    return path


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())} if directory.exists() else {}


@pytest.mark.parametrize("systemd_here", [True, False], ids=["systemd", "no-systemd-cron"])
def test_playbook_installs_then_removes(tmp_path: Path, systemd_here: bool) -> None:
    """cleanup_scheduler=auto: systemd units where the systemd marker directory exists, else a cron.d entry."""
    adapter = AnsibleAdapter(_inventory(tmp_path), tmp_path / "ansible")
    the_spec = spec(tmp_path)
    units, cron, marker = tmp_path / "units", tmp_path / "cron.d", tmp_path / "run-systemd-system"
    if systemd_here:
        marker.mkdir()
    overrides = {"cleanup_unit_dir": str(units), "cleanup_cron_dir": str(cron), "cleanup_use_systemctl": False,
                 "cleanup_systemd_marker": str(marker)}
    result = apply_schedule(adapter, HOST, the_spec, overrides=overrides)
    assert result.ok and result.changed == (HOST,)
    expected = render_units(schedule_vars(the_spec), unit_dir=str(units), cron_dir=str(cron))
    installed = {str(units / n): text for n, text in _files(units).items()}
    installed.update({str(cron / n): text for n, text in _files(cron).items()})
    if systemd_here:
        assert sorted(installed) == [str(units / f"splitter-cleanup-rs2.{k}") for k in ("service", "timer")]
    else:
        assert sorted(installed) == [str(cron / "splitter-cleanup-rs2")]
    for path, text in installed.items():
        assert text == expected[path]  # the playbook writes exactly what --print-schedule shows

    removed = apply_schedule(adapter, HOST, the_spec, present=False, overrides=overrides)
    assert removed.ok and removed.changed == (HOST,)
    assert _files(units) == {} and _files(cron) == {}


def _config(tmp_path: Path) -> Path:
    layout = LabLayout(tmp_path / "lab", 42990)  # files only: no mongod is started
    layout.write_files(Path("/bin/true"))
    return layout.config_path


def test_print_schedule_needs_no_cluster(tmp_path: Path) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(cleanup, ["-c", str(config), "--set", "rs1", "--window", "01:00-05:00",
                                          "--max-docs", "1000", "--max-lag", "5s", "--print-schedule"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "# ---- /etc/systemd/system/splitter-cleanup-rs1.service" in out
    assert "# ---- /etc/systemd/system/splitter-cleanup-rs1.timer" in out
    assert "# ---- /etc/cron.d/splitter-cleanup-rs1 (only where there is no systemd)" in out
    assert (f"cleanup -c {config} --set rs1 --window 01:00-05:00 --batch-size {DEFAULT_BATCH_SIZE} --max-docs 1000 "
            "--max-lag 5s") in out
    assert "OnCalendar=*-*-* 01:00:00" in out and "\n0 1 * * * " in out
    assert "--install-schedule HOST" in out


def test_print_schedule_needs_a_window(tmp_path: Path) -> None:
    result = CliRunner().invoke(cleanup, ["-c", str(_config(tmp_path)), "--set", "rs2", "--print-schedule"])
    assert result.exit_code != 0 and "--window" in result.exception.message


def test_install_and_remove_from_the_cli(tmp_path: Path) -> None:
    config = _config(tmp_path)
    units = tmp_path / "units"
    # inventory vars (not extravars) point the playbook at a temp dir, so the CLI path is the real one
    (config.parent / "inventory.yml").write_text(_inventory(
        tmp_path, cleanup_unit_dir=str(units), cleanup_use_systemctl=False, cleanup_scheduler="systemd").read_text())
    args = ["-c", str(config), "--set", "both", "--window", "22:00-03:00"]
    result = CliRunner().invoke(cleanup, [*args, "--install-schedule", HOST])
    assert result.exit_code == 0, result.output
    assert "installed on sched1" in result.output
    assert sorted(_files(units)) == ["splitter-cleanup-both.service", "splitter-cleanup-both.timer"]
    assert "--set both --window 22:00-03:00" in _files(units)["splitter-cleanup-both.service"]
    result = CliRunner().invoke(cleanup, [*args, "--remove-schedule", HOST])
    assert result.exit_code == 0 and "removed from sched1" in result.output
    assert _files(units) == {}
