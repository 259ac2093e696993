"""Preflight checks beyond topology and health: data the split cannot carry safely, members rs2 cannot use,
servers it must not touch. Each family returns findings (refuse or warn, each with the fix); `report` shows
every warning and raises one refusal listing all problems, so `plan` shows them together."""

from __future__ import annotations

from splitter.preflight.findings import Finding, report
from splitter.preflight.members import member_findings
from splitter.preflight.namespaces import namespace_findings
from splitter.preflight.server import server_findings

__all__ = ["Finding", "all_findings", "report"]


def all_findings(ctx) -> list[Finding]:  # type: ignore[no-untyped-def]
    """Every finding of the families below, in the order the operator should fix them."""
    return [*server_findings(ctx), *member_findings(ctx), *namespace_findings(ctx)]
