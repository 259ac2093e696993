"""Which residues a set holds now, by the routing published for the applications, and whether a split may move
the residues its config gives the new set (a split can only hand over what its source holds)."""

from __future__ import annotations

from splitter.routing import Routing
from splitter.routing_document import RoutingDocument


def moved_residue_refusal(routing: Routing, published: RoutingDocument | None, source: str,
                          target: str) -> str | None:
    """Why this split's routing does not follow from the published one, or None. Without a published document
    the source holds the whole key space. Residues of other sets must keep their owner; the source's residues go
    to the source or the target; the target only gets residues the source holds."""
    if published is None:
        return None
    old = published.modulus
    if routing.modulus % old:
        return (f"routing.modulus {routing.modulus} is not a multiple of the published modulus {old}: the new "
                f"residues would cut across the sets' current halves")
    problems = []
    for residue in range(routing.modulus):
        before = published.owners.get(str(residue % old))
        after = routing.owners[residue]
        if after == target and before != source:
            problems.append(f"residue {residue} (% {routing.modulus}) goes to {target}, but {source} does not hold "
                            f"it (published owner: {before})")
        elif before != source and after != before:
            problems.append(f"residue {residue} (% {routing.modulus}) is {before}'s and would become {after}'s")
        elif before == source and after not in (source, target):
            problems.append(f"residue {residue} (% {routing.modulus}) is {source}'s and would go to {after}, "
                            f"which is not part of this split")
    if not problems:
        return None
    return (f"the routing moves residues {source} does not hold (published epoch {published.epoch}, "
            f"% {old}: {published.owners}): " + "; ".join(problems))
