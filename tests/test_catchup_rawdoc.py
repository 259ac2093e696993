"""The catch-up's raw document class (splitter/catchup/rawdoc.py): the same documents as pymongo's
RawBSONDocument, byte for byte, without its per-construction size check (pure logic)."""

from __future__ import annotations

import datetime
import uuid

from bson import (
    DBRef,
    Decimal128,
    Int64,
    MaxKey,
    MinKey,
    ObjectId,
    Regex,
    Timestamp,
    decode,
    decode_all,
    encode,
)
from bson.binary import Binary
from bson.code import Code
from bson.raw_bson import RawBSONDocument

from splitter.catchup import rawdoc
from splitter.catchup.apply import translate
from splitter.catchup.rawdoc import RAW, ServerRaw, namespace, top_level
from splitter.routing import Routing

EVENT = {
    "_id": {"_data": "8265AB"}, "operationType": "insert", "clusterTime": Timestamp(1_700_000_000, 7),
    "fullDocument": {"_id": ObjectId(), "user_id": 7, "when": datetime.datetime(2020, 1, 2, 3, 4, 5, 678000),
                     "money": Decimal128("1.10"), "n": Int64(2**40), "bin": Binary(b"\x00\x01", 0x80),
                     "uuid_old": Binary(uuid.UUID(int=5).bytes, 3), "re": Regex("^a", "i"), "code": Code("x", {"a": 1}),
                     "ref": DBRef("c", 1), "lo": MinKey(), "hi": MaxKey(), "nested": [{"a": [1, {"b": None}]}]},
    "ns": {"db": "app", "coll": "users"}, "documentKey": {"_id": 1},
}


def test_this_pymongo_takes_the_fast_class() -> None:
    """If a pymongo release renames RawBSONDocument's private slots the catch-up falls back to the plain class
    (still right, slower): this shows which one runs here."""
    assert rawdoc.DOCUMENT_CLASS is ServerRaw and RAW.document_class is ServerRaw


def test_documents_decode_and_re_encode_exactly_as_raw_bson_documents_do() -> None:
    data = encode(EVENT)
    fast, plain = decode(data, RAW), decode(data, RAW.with_options(document_class=RawBSONDocument))
    assert type(fast) is ServerRaw and type(fast["fullDocument"]) is ServerRaw
    assert fast == plain and dict(fast.items()) == dict(plain.items())
    assert fast["fullDocument"].raw == plain["fullDocument"].raw == encode(EVENT["fullDocument"])
    assert encode(fast) == data and encode({"doc": fast["fullDocument"]}) == encode({"doc": EVENT["fullDocument"]})
    batch = encode(EVENT) * 3
    assert [d.raw for d in decode_all(batch, RAW)] == [data] * 3


def test_top_level_is_the_decoded_fields_once_and_translate_reads_them() -> None:
    fast = decode(encode(EVENT), RAW)
    fields = top_level(fast)
    assert fields is top_level(fast)  # decoded once, shared
    assert set(fields) == set(EVENT) and fields["clusterTime"] == EVENT["clusterTime"]
    assert top_level({"a": 1}) == {"a": 1}
    routing = Routing(remainders={"rs1": 0, "rs2": 1}, databases={"app": None})
    tr = translate(fast, routing, "rs2")
    assert tr.outcome == "applied" and tr.writes[0]._doc.raw == encode(EVENT["fullDocument"])


def test_namespace_is_decoded_once_per_distinct_namespace() -> None:
    first, second = decode(encode(EVENT), RAW), decode(encode(EVENT), RAW)
    assert namespace(first["ns"]) == ("app", "users") == namespace({"db": "app", "coll": "users"})
    assert namespace(first["ns"]) is namespace(second["ns"])  # the same decoded pair, from the cache
    assert namespace(None) == ("", "") and namespace(decode(encode({"ns": {"db": "app"}}), RAW)["ns"]) == ("app", "")
