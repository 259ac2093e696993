"""Which residues a second split may move: only those its source holds by the published routing."""

from __future__ import annotations

from splitter.routing import Routing
from splitter.routing_document import RoutingDocument
from splitter.routing_held import moved_residue_refusal


def _routing(modulus: int, owners: dict[int, str]) -> Routing:
    return Routing.model_validate({"modulus": modulus, "owners": owners, "databases": {"app": "user_id"}})


PUBLISHED = RoutingDocument.build(_routing(2, {0: "rs1", 1: "rs2"}), epoch=2, state="final",
                                  owners={0: "rs1", 1: "rs2"}, moving=(), sets={})


def test_story_split_by_four_follows_from_the_published_halves() -> None:
    assert moved_residue_refusal(_routing(4, {0: "rs1", 1: "rs2", 2: "rs3", 3: "rs2"}), PUBLISHED, "rs1",
                                 "rs3") is None


def test_first_split_has_no_published_routing() -> None:
    assert moved_residue_refusal(_routing(2, {0: "rs1", 1: "rs2"}), None, "rs1", "rs2") is None


def test_moving_a_residue_of_another_set_is_refused() -> None:
    refusal = moved_residue_refusal(_routing(4, {0: "rs1", 1: "rs3", 2: "rs1", 3: "rs2"}), PUBLISHED, "rs1", "rs3")
    assert refusal and "residue 1 (% 4) goes to rs3, but rs1 does not hold it" in refusal


def test_taking_a_residue_from_a_third_set_is_refused() -> None:
    refusal = moved_residue_refusal(_routing(4, {0: "rs1", 1: "rs2", 2: "rs3", 3: "rs1"}), PUBLISHED, "rs1", "rs3")
    assert refusal and "residue 3 (% 4) is rs2's and would become rs1's" in refusal


def test_a_modulus_that_cuts_across_the_halves_is_refused() -> None:
    refusal = moved_residue_refusal(_routing(3, {0: "rs1", 1: "rs2", 2: "rs3"}), PUBLISHED, "rs1", "rs3")
    assert refusal and "not a multiple of the published modulus 2" in refusal
