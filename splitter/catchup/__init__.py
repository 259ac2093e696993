"""Catch-up: replay the target set's half of rs1's writes made after the split optime (issue 4, point 1)."""

from splitter.catchup.apply import IndexOp, Translation, UnsupportedChange, translate
from splitter.catchup.background import BackgroundCatchUp
from splitter.catchup.worker import CatchUpStats, CatchUpWorker
from splitter.store.catchup_position import Position, PositionStore, read_status

__all__ = ["BackgroundCatchUp", "CatchUpStats", "CatchUpWorker", "IndexOp", "Position", "PositionStore", "Translation",
           "UnsupportedChange", "read_status", "translate"]
