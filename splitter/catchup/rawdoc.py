"""The raw BSON document class the catch-up decodes its server replies into.

Touches: nothing (pure). `RawBSONDocument` re-checks the size of its bytes on every construction, and the C decoder
constructs one per event and one per nested document (the event's token, document, namespace, key): under a bulk
writer that check was the largest single cost of the stream's reader thread (py-spy, bench_catchup saturating).
Bytes that come from the server in a reply pymongo has already parsed are whole documents, so `ServerRaw` skips
the check; everything else about the document (lazy decoding, byte-for-byte re-encoding) is `RawBSONDocument`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from bson import decode
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import DEFAULT_RAW_BSON_OPTIONS, RawBSONDocument


class ServerRaw(RawBSONDocument):
    """A RawBSONDocument over bytes the server sent (see the module doc)."""

    __slots__ = ()

    def __init__(self, bson_bytes: bytes, codec_options: Any = None) -> None:
        self._RawBSONDocument__raw = bson_bytes  # the base class's private slots (checked by `_fits`)
        self._RawBSONDocument__inflated_doc = None
        self._RawBSONDocument__codec_options = codec_options if codec_options is not None else DEFAULT_RAW_BSON_OPTIONS


def top_level(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """A document's top level as a read-only mapping: for a raw document its decoded fields, decoded once and
    shared, not copied (nested documents stay raw). Each lookup in a RawBSONDocument goes through its lazy
    decoding, and a dozen lookups per event were a good part of the catch-up's time; callers must not change it."""
    if type(doc) is ServerRaw:  # only exists where `_fits`: its decoded fields, pymongo's own cache
        return doc._RawBSONDocument__inflated  # type: ignore[attr-defined]
    return dict(doc.items()) if isinstance(doc, RawBSONDocument) else doc


def namespace(ns: Mapping[str, Any] | None) -> tuple[str, str]:
    """An event's `ns` as (database, collection); a raw one is decoded once per distinct namespace, not once per
    event (every event carries one)."""
    if isinstance(ns, RawBSONDocument):
        return _namespace_of(ns.raw)
    fields = ns or {}
    return fields.get("db", ""), fields.get("coll", "")


@functools.lru_cache(maxsize=4096)
def _namespace_of(raw: bytes) -> tuple[str, str]:
    fields = decode(raw)
    return fields.get("db", ""), fields.get("coll", "")


def _fits() -> bool:
    """Whether ServerRaw can set RawBSONDocument's private slots in this pymongo (checked once, at import): if a
    release renames them, the catch-up uses the plain class."""
    try:
        doc = ServerRaw(b"\x0c\x00\x00\x00\x10a\x00\x01\x00\x00\x00\x00")  # {a: 1}
        return doc.raw[:1] == b"\x0c" and doc._RawBSONDocument__inflated == {"a": 1}  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return False


DOCUMENT_CLASS: type[RawBSONDocument] = ServerRaw if _fits() else RawBSONDocument
RAW = CodecOptions(document_class=DOCUMENT_CLASS, datetime_conversion=DatetimeConversion.DATETIME_AUTO,
                   tz_aware=True)
