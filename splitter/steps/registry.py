"""The ordered list of steps."""

from __future__ import annotations

from splitter.steps.add_arbiter_rs1 import AddArbiterRs1
from splitter.steps.base import Step
from splitter.steps.catch_up import CatchUp
from splitter.steps.deploy_client_v1 import DeployClientV1
from splitter.steps.deploy_client_v2 import DeployClientV2
from splitter.steps.preflight import Preflight
from splitter.steps.prepare_arbiters import PrepareArbiters
from splitter.steps.remove_moving_nodes import RemoveMovingNodes
from splitter.steps.rewrite_replset_config import RewriteReplsetConfig
from splitter.steps.start_standalone import StartStandalone
from splitter.steps.start_target import StartTarget, StartTargetArbiter
from splitter.steps.stop_moving_nodes import StopMovingNodes
from splitter.steps.stop_standalone import StopStandalone


def all_steps() -> list[Step]:
    return [Preflight(), PrepareArbiters(), AddArbiterRs1(), DeployClientV1(), StopMovingNodes(),
            RemoveMovingNodes(), StartStandalone(), RewriteReplsetConfig(), StopStandalone(), StartTarget(),
            StartTargetArbiter(), CatchUp(), DeployClientV2()]


STEP_IDS = [s.id for s in all_steps()]
POINT_OF_NO_RETURN = RewriteReplsetConfig.id
