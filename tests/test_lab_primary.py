"""The lab's "node1 is PRIMARY" decision (pure; the lab itself is exercised by every mongod test)."""

from __future__ import annotations

from typing import Any

from splitter.lab.primary import STEP_UP_PAUSE, decide

HOSTS = ["h:1", "h:2", "h:3", "h:4"]


def view(states: list[str], term: int = 3) -> dict[str, Any]:
    return {"term": term, "members": [{"name": h, "stateStr": s} for h, s in zip(HOSTS, states, strict=True)]}


def views(*each: dict[str, Any] | str) -> dict[str, dict[str, Any] | str]:
    return dict(zip(HOSTS, each, strict=True))


SETTLED = ["PRIMARY", "SECONDARY", "SECONDARY", "SECONDARY"]


def test_ready_only_when_every_member_sees_node1_in_one_term() -> None:
    assert decide(views(*[view(SETTLED)] * 4), "h:1", None).sentence == (
        "node1 is PRIMARY of three secondaries in term 3")
    lagging = decide(views(view(SETTLED), view(SETTLED), view(SETTLED, term=4), view(SETTLED)), "h:1", None)
    assert (lagging.action, lagging.sentence) == (
        "wait", "node1 is PRIMARY; members still disagree on the term ({'h:1': 3, 'h:2': 3, 'h:3': 4, 'h:4': 3})")


def test_a_member_that_does_not_answer_is_named() -> None:
    decision = decide(views(view(SETTLED), view(SETTLED), "ServerSelectionTimeoutError", view(SETTLED)), "h:1", 0)
    assert (decision.action, decision.sentence) == ("wait", "no answer from h:3 (ServerSelectionTimeoutError)")


def test_node1_steps_up_when_another_member_is_primary_but_not_again_within_the_pause() -> None:
    other = ["SECONDARY", "PRIMARY", "SECONDARY", "SECONDARY"]
    first = decide(views(*[view(other)] * 4), "h:1", None)
    assert first.action == "step-up" and first.sentence.startswith("asking node1 to step up (primaries seen: ['h:2']")
    assert decide(views(*[view(other)] * 4), "h:1", 2.0).action == "wait"
    assert decide(views(*[view(other)] * 4), "h:1", STEP_UP_PAUSE + 0.1).action == "step-up"


def test_four_secondaries_step_up_and_a_member_still_starting_waits() -> None:
    assert decide(views(*[view(["SECONDARY"] * 4)] * 4), "h:1", None).action == "step-up"
    starting = ["SECONDARY", "STARTUP2", "SECONDARY", "SECONDARY"]
    assert decide(views(*[view(starting)] * 4), "h:1", None).action == "wait"


def test_node1_primary_in_its_own_view_while_another_still_claims_it_waits_for_heartbeats() -> None:
    stale = ["SECONDARY", "PRIMARY", "SECONDARY", "SECONDARY"]
    decision = decide(views(view(SETTLED, term=4), view(stale), view(SETTLED, term=4), view(SETTLED, term=4)),
                      "h:1", None)
    assert decision.action == "wait" and "primaries seen: ['h:1', 'h:2']" in decision.sentence
