"""A preflight finding: what was seen, whether it refuses the split, and what the operator can do about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from splitter.errors import BadInput


class PreflightRefused(BadInput):
    """A guard refused to start; the cluster is untouched."""


@dataclass(frozen=True)
class Finding:
    refuse: bool
    message: str
    fix: str

    def line(self) -> str:
        return f"{self.message} (fix: {self.fix})"


def refuse(message: str, fix: str) -> Finding:
    return Finding(True, message, fix)


def warn(message: str, fix: str) -> Finding:
    return Finding(False, message, fix)


def report(findings: list[Finding], progress: Callable[[str], None]) -> None:
    """Every warning as a progress sentence; then one refusal naming every problem and its fix."""
    for f in findings:
        if not f.refuse:
            progress(f"warning: {f.line()}")
    refused = [f for f in findings if f.refuse]
    if refused:
        raise PreflightRefused("preflight refused the split:\n  - " + "\n  - ".join(f.line() for f in refused),
                               hint="make the fixes above (nothing was changed), then `splitter plan` again")
