"""Build step only (metadata lives in pyproject.toml): ship the top-level playbooks/ inside the wheel.

playbooks/ stays the source of truth in the repository; the wheel gets a copy at splitter/playbooks, which
splitter/hosts/ansible_adapter.py finds from the installed package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithPlaybooks(build_py):
    """build_py, then copy playbooks/ (playbooks and templates) into the built package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "splitter" / "playbooks"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "playbooks", target, ignore=shutil.ignore_patterns("*.retry", "__pycache__"))


setup(cmdclass={"build_py": BuildWithPlaybooks})
