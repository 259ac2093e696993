"""Whether rs1 of a lab is ready with node1 as its PRIMARY, and what to do if not: one pure decision per poll.

Touches: nothing (reads the members' replSetGetStatus views it is given)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# An election node1 won reaches the other members by heartbeat (1 s in the lab). A step-up asked for meanwhile
# bumps the term again, so on a loaded machine asking every poll can keep the members from ever agreeing on one
# term; ask again only after this pause.
STEP_UP_PAUSE = 10.0

View = Mapping[str, Any] | str  # a member's replSetGetStatus reply, or why it did not answer


@dataclass(frozen=True)
class PrimaryDecision:
    """`action` is "ready", "step-up" or "wait"; `sentence` is the log line and what a timeout reports."""

    action: str
    sentence: str


def decide(views: Mapping[str, View], node1: str, since_step_up: float | None) -> PrimaryDecision:
    """views: member host -> its view (node1 among them). since_step_up: seconds since the last step-up, None if
    none was asked for."""
    silent = [f"{host} ({view})" for host, view in views.items() if isinstance(view, str)]
    if silent:
        return PrimaryDecision("wait", f"no answer from {', '.join(silent)}")
    replies = {host: view for host, view in views.items() if not isinstance(view, str)}
    own = replies[node1]
    states = {m["name"]: m["stateStr"] for m in own["members"]}
    primaries = sorted({m["name"] for view in replies.values() for m in view["members"]
                        if m["stateStr"] == "PRIMARY"})
    terms = {host: view["term"] for host, view in replies.items()}
    seen = ", ".join(f"{name} {state}" for name, state in states.items())
    if primaries == [node1]:
        if sorted(states.values()) != ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]:
            return PrimaryDecision("wait", f"node1 is PRIMARY; waiting for three secondaries ({seen})")
        if len(set(terms.values())) > 1:
            return PrimaryDecision("wait", f"node1 is PRIMARY; members still disagree on the term ({terms})")
        return PrimaryDecision("ready", f"node1 is PRIMARY of three secondaries in term {own['term']}")
    if states.get(node1) == "PRIMARY" or not (primaries or list(states.values()).count("SECONDARY") == 4):
        return PrimaryDecision("wait", f"waiting for the members to agree (primaries seen: {primaries}; {seen})")
    if since_step_up is not None and since_step_up < STEP_UP_PAUSE:
        return PrimaryDecision("wait", f"node1 asked to step up {since_step_up:.0f}s ago; waiting ({seen})")
    return PrimaryDecision("step-up", f"asking node1 to step up (primaries seen: {primaries or 'none'}; {seen})")
