"""Index and namespace changes replayed on the target (issue 14 item 7).

Touches: the target set: createIndexes / dropIndexes, drop, dropDatabase, renameCollection (dropTarget), all
`w: majority`. Each is applied alone, after every earlier write has landed, and the position is saved right after.
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from splitter.catchup.apply import DdlOp, IndexOp, Translation

IGNORABLE_CODES = frozenset({26, 27})  # NamespaceNotFound, IndexNotFound: already done (a replay after a crash)


def _wc(wtimeout_ms: int) -> dict[str, object]:
    return {"w": "majority", "wtimeout": wtimeout_ms}


def apply_index(target: MongoClient, tr: Translation, wtimeout_ms: int) -> str:
    op: IndexOp = tr.index  # type: ignore[assignment]
    db = target[tr.database]
    if op.action == "create":
        db.command({"createIndexes": tr.collection, "indexes": op.create_specs(), "writeConcern": _wc(wtimeout_ms)})
    else:
        for name in op.names:
            _ignoring_gone(lambda n=name: db.command({"dropIndexes": tr.collection, "index": n,
                                                      "writeConcern": _wc(wtimeout_ms)}))
    return f"{op.action} index {', '.join(op.names)} on {tr.database}.{tr.collection}"


def apply_ddl(target: MongoClient, tr: Translation, wtimeout_ms: int) -> str:
    """Replay a drop, dropDatabase or rename (`$out` renames its temp collection over the target: the temp
    collection's documents were replayed like any other, so the target ends with its half of the result)."""
    op: DdlOp = tr.ddl  # type: ignore[assignment]
    db = target[tr.database]
    wc = _wc(wtimeout_ms)
    if op.action == "dropDatabase":
        db.command({"dropDatabase": 1, "writeConcern": wc})
        return f"drop database {tr.database}"
    if op.action == "drop":
        _ignoring_gone(lambda: db.command({"drop": tr.collection, "writeConcern": wc}))
        return f"drop {tr.database}.{tr.collection}"
    assert op.to is not None
    if tr.collection not in db.list_collection_names(filter={"name": tr.collection}):
        # None of the renamed collection's documents were the target's (or a replay already renamed it and
        # replayed its documents again): the target's half of the result is empty, not the old contents.
        _ignoring_exists(lambda: db.command({"create": tr.collection, "writeConcern": wc}))
    target.admin.command({"renameCollection": f"{tr.database}.{tr.collection}", "to": f"{op.to[0]}.{op.to[1]}",
                          "dropTarget": True, "writeConcern": wc})
    return f"rename {tr.database}.{tr.collection} to {op.to[0]}.{op.to[1]}"


def _ignoring_gone(call: Callable[[], object]) -> None:
    try:
        call()
    except OperationFailure as exc:
        if exc.code not in IGNORABLE_CODES:
            raise


def _ignoring_exists(call: Callable[[], object]) -> None:
    try:
        call()
    except OperationFailure as exc:
        if exc.code != 48:  # NamespaceExists
            raise
