"""The grow's ordered steps."""

from __future__ import annotations

from splitter.grow.steps.add import AddNewMembers
from splitter.grow.steps.preflight import GrowPreflight
from splitter.grow.steps.prepare import PrepareNewMembers
from splitter.grow.steps.start import StartNewMembers
from splitter.grow.steps.synced import WaitSynced
from splitter.grow.steps.votes import GrantVotes
from splitter.steps.base import Step


def grow_steps() -> list[Step]:
    return [GrowPreflight(), PrepareNewMembers(), StartNewMembers(), AddNewMembers(), WaitSynced(), GrantVotes()]


GROW_STEP_IDS = [s.id for s in grow_steps()]
