"""`splitter verify`: compare the routed halves of two sets by counts and order-independent content hashes."""

from splitter.verify.compare import compare_sets, digest
from splitter.verify.report import CollectionHalfResult, UnclaimedCount, VerifyReport

__all__ = ["CollectionHalfResult", "UnclaimedCount", "VerifyReport", "compare_sets", "digest"]
