"""Catch-up: replay the target set's half of the source's writes made after the split optime (issues 4, 14, 15)."""

from splitter.catchup.apply import DdlOp, IndexOp, Lookup, Translation, UnsupportedChange, translate
from splitter.catchup.background import BackgroundCatchUp
from splitter.catchup.worker import CatchUpStats, CatchUpWorker
from splitter.store.catchup_position import Position, PositionStore, read_status

__all__ = ["BackgroundCatchUp", "CatchUpStats", "CatchUpWorker", "DdlOp", "IndexOp", "Lookup", "Position",
           "PositionStore", "Translation", "UnsupportedChange", "read_status", "translate"]
