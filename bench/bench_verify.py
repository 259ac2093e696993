"""Benchmark 6: verify's speed against a plain scan of the same collections, on a split lab.

Tool: `compare_sets(rs1, rs2, routing, [rs2])`, what `splitter verify` and the cutover run (rs2's half, counts +
content hashes per _id range, 4 workers), and once more with 1 worker. Baselines on the same collections,
secondary preferred like verify, single-threaded, raw BSON, nothing computed:
  - a plain scan: every document of each routed collection on both sets (what verify has to go through);
  - a half scan: the same half filter verify uses, along the _id index as verify does, on both sets (the same
    documents, without hashing and ranges).
Documents per second count every document of the compared collections on both sets (the plain scan's count).

    python bench/bench_verify.py --docs 100k --repeat 5
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Result,
    arg_parser,
    lab_docs,
    log,
    main_guard,
    parse_count,
    per_second,
    percentile,
    ratio,
    rs1_client,
    rs2_client,
    split_lab,
)

DEFAULT_DOCS = "100k"


def routed_collections(client: Any, routing: Any) -> list[Any]:
    found = []
    for database in sorted(routing.databases):
        for name in sorted(client[database].list_collection_names(filter={"type": "collection"})):
            routed = routing.routed(database, name)
            if routed is not None:
                found.append(routed)
    return found


def scan(clients: dict[str, Any], collections: list[Any], query_for: Any, hint: Any = None) -> tuple[int, float]:
    """Read every matching document of each collection on each side, one after another: (documents, seconds)."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument
    from pymongo import ReadPreference

    raw = CodecOptions(document_class=RawBSONDocument)
    started, count = time.monotonic(), 0
    for client in clients.values():
        for routed in collections:
            db = client.get_database(routed.database, codec_options=raw,
                                     read_preference=ReadPreference.SECONDARY_PREFERRED)
            for _ in db[routed.collection].find(query_for(routed), batch_size=1000, hint=hint):
                count += 1
    return count, time.monotonic() - started


def best(times: list[float]) -> float:
    """The fastest of the repeats: the least disturbed by the machine's other load."""
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("verify documents per second against a plain scan of the same collections.")
    parser.add_argument("--docs", default=os.environ.get("SPLITTER_BENCH_DOCS") or DEFAULT_DOCS)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement; the fastest counts")
    args = parser.parse_args(argv)
    docs = parse_count(args.docs)
    result = Result("verify", params={"docs": docs, "repeat": args.repeat, "half": "rs2 (as the cutover)"})

    def body() -> None:
        from splitter.config import load_config
        from splitter.verify.compare import compare_sets

        with split_lab(docs, "verify") as (lab, _run):
            result.params["docs"] = lab_docs(lab) or docs
            routing = load_config(lab.layout.config_path).routing
            with rs1_client(lab) as rs1, rs2_client(lab) as rs2:
                clients = {"rs1": rs1, "rs2": rs2}
                collections = routed_collections(rs1, routing)
                times: dict[str, list[float]] = {"verify_4": [], "verify_1": [], "plain": [], "half": []}
                total = half_docs = 0
                reports = []
                for i in range(max(args.repeat, 1)):
                    log(f"round {i + 1}: plain scan, half scan, verify with 4 and 1 workers")
                    total, seconds = scan(clients, collections, lambda _r: {})
                    times["plain"].append(seconds)
                    half_docs, seconds = scan(clients, collections, lambda r: routing.half_filter(r.key, "rs2"),
                                              hint=[("_id", 1)])
                    times["half"].append(seconds)
                    for workers in (4, 1):
                        started = time.monotonic()
                        reports.append(compare_sets(rs1, rs2, routing, ["rs2"], workers=workers,
                                                    source_name="rs1", target_name="rs2"))
                        times[f"verify_{workers}"].append(time.monotonic() - started)
        fastest = {k: best(v) for k, v in times.items()}
        rates = {k: per_second(total, v) for k, v in fastest.items()}
        result.results.update({
            "collections": [c.namespace for c in collections], "documents_both_sets": total,
            "documents_of_half_both_sets": half_docs, "all_equal": all(r.ok for r in reports),
            "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "median_seconds": {k: round(percentile(v, 50) or 0.0, 3) for k, v in times.items()},
            "docs_per_s": rates,
            "verify_vs_plain_scan": ratio(rates["verify_4"], rates["plain"]),
            "verify_1_worker_vs_plain_scan": ratio(rates["verify_1"], rates["plain"]),
            "verify_vs_half_scan": ratio(rates["verify_4"], rates["half"]),
        })
        equal = "equal" if all(r.ok for r in reports) else "DIFFERENT"
        result.row("verify (4 workers), docs/s", rates["verify_4"], rates["plain"], "docs/s",
                   baseline_name="plain scan, 1 thread", note=f"{total:,} docs on both sets; rs2's half {equal}")
        result.row("verify (1 worker), docs/s", rates["verify_1"], rates["plain"], "docs/s",
                   baseline_name="plain scan, 1 thread")
        result.row("verify (4 workers) vs scanning just rs2's half", rates["verify_4"], rates["half"], "docs/s",
                   baseline_name="half-filter scan along _id, 1 thread",
                   note="the same documents: the cost of hashing and ranges")

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
