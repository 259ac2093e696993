"""What the catch-up reads about rs1 besides the change stream: oplog window, last write, events behind;
and which pymongo errors are worth reopening the stream for."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bson import Timestamp
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from splitter.errors import OperationalError

log = logging.getLogger(__name__)

# Network / election / shutdown / write-concern-timeout codes: reopening from the saved position clears them.
TRANSIENT_CODES = frozenset({6, 7, 43, 64, 89, 91, 133, 189, 234, 262, 9001, 10107, 11600, 11602, 13435, 13436})
HISTORY_LOST_CODES = frozenset({280, 286})  # ChangeStreamFatalError, ChangeStreamHistoryLost
LAG_EVENTS_LIMIT = 1_000_000


def is_transient(exc: BaseException) -> bool:
    """Whether reopening the stream and re-applying from the saved position may succeed."""
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        codes = [e.get("code") for e in (*details.get("writeErrors", ()), *details.get("writeConcernErrors", ()))]
        return bool(codes) and all(code in TRANSIENT_CODES for code in codes)
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NotPrimaryError, NetworkTimeout, selection timeout
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES or exc.has_error_label("ResumableChangeStreamError")
    return False


def is_history_lost(exc: BaseException) -> bool:
    return isinstance(exc, OperationFailure) and exc.code in HISTORY_LOST_CODES


def fmt_ts(ts: Timestamp) -> str:
    return f"{ts.time}:{ts.inc}"


def history_lost_error(target_set: str, split_optime: Timestamp, resumed_from: Timestamp | None,
                       detail: str) -> OperationalError:
    """The error for a split optime (or a saved position) that rs1's oplog no longer holds."""
    since = (f"the split optime {fmt_ts(split_optime)}" if resumed_from is None
             else f"the catch-up position {fmt_ts(resumed_from)} (split optime {fmt_ts(split_optime)})")
    return OperationalError(
        f"catch-up into {target_set}: {since} is no longer in rs1's oplog ({detail}); the writes made on rs1 since "
        f"then cannot be replayed into {target_set}",
        hint=f"re-split from the start, or copy {target_set}'s half from rs1 again before cutover; give rs1 a "
             "larger oplog (replSetResizeOplog) so that it covers the whole split")


def oldest_oplog_ts(source: MongoClient) -> Timestamp | None:
    """The first entry of rs1's oplog, or None when it cannot be read (e.g. no privilege on `local`)."""
    try:
        doc = source.local["oplog.rs"].find_one({}, {"ts": 1}, sort=[("$natural", 1)])
    except OperationFailure as exc:  # the server's own check (ChangeStreamHistoryLost) still applies
        log.info("catch-up: cannot read rs1's oplog window: %s", exc)
        return None
    return doc["ts"] if doc else None


def last_write_ts(source: MongoClient) -> Timestamp:
    """rs1's last write as the primary reports it in `hello` (no privileges needed)."""
    hello = source.admin.command("hello")
    last = (hello.get("lastWrite") or {}).get("opTime", {}).get("ts")
    if last is None:
        raise OperationalError("catch-up: rs1 did not report its last write (hello.lastWrite)")
    return last


def events_behind(source: MongoClient, databases: Iterable[str], through: Timestamp,
                  upto: Timestamp | None = None) -> int | None:
    """Estimate: oplog entries of the routed databases (and transactions) after `through` (up to `upto`),
    capped; None if the oplog cannot be read."""
    dbs = "|".join(re.escape(db) for db in sorted(databases))
    ts: dict[str, Timestamp] = {"$gt": through, **({"$lte": upto} if upto is not None else {})}
    query = {"ts": ts, "$or": [{"ns": {"$regex": f"^({dbs})\\."}},
                                              {"ns": "admin.$cmd", "o.applyOps": {"$exists": True}}]}
    try:
        return source.local["oplog.rs"].count_documents(query, limit=LAG_EVENTS_LIMIT, maxTimeMS=3000)
    except PyMongoError as exc:
        log.info("catch-up lag: cannot count rs1's oplog: %s", exc)
        return None
