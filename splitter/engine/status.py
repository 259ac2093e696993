"""What `splitter status` reports: checkpoint, gate, split optime, live topology of both sets."""

from __future__ import annotations

from typing import Any

from splitter.catchup import read_status
from splitter.errors import SplitterError
from splitter.steps.context import StepContext
from splitter.steps.registry import STEP_IDS
from splitter.store.checkpoint import StepRecord


def _topology(ctx: StepContext, hosts: list[str]) -> dict[str, str]:
    for host in hosts:
        try:
            return ctx.inspector.status(host).states()
        except SplitterError:
            continue
    return {}


def collect_status(ctx: StepContext) -> dict[str, Any]:
    steps = []
    for step_id in STEP_IDS:
        record = ctx.state.steps.get(step_id)
        steps.append({"id": step_id, **(record or StepRecord()).model_dump()})
    return {
        "steps": steps,
        "waiting_gate": ctx.state.waiting_gate,
        "split_optime": ctx.state.split.optime.model_dump() if ctx.state.split else None,
        "point_of_no_return": ctx.state.point_of_no_return.model_dump() if ctx.state.point_of_no_return else None,
        "cutover": ctx.state.cutover.model_dump(mode="json") if ctx.state.cutover else None,
        "catch_up": read_status(ctx.store.dir, ctx.target_name),
        "topology": {ctx.source_name: _topology(ctx, ctx.keep_hosts),
                     ctx.target_name: _topology(ctx, ctx.move_hosts)},
    }
