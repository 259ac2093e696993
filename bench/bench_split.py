"""Benchmarks 1 and 2: the split's wall time at two data sizes beside a copy-based split, and where it goes.

Per size: a lab of four data nodes with that many documents (restored from the snapshot cache), then
  - baseline: a copy-based split: read every document of rs1's routed collections (the half filter runs on the
    server, so rs1 still scans everything) and bulk-insert rs2's half, then its indexes, into a fresh
    two-member replica set (a second lab, node3/node4 removed; its app database dropped before each copy);
  - tool: the whole split (preflight .. deploy-client-v2, gates confirmed) in this process, instrumented:
    the audit log, every wait for mongod and every playbook are timed (bench/common.py: breakdown).
The copy baseline is a lower bound for a copy-based split: it has no catch-up and no cutover.

    python bench/bench_split.py --sizes 20k,100k        (or SPLITTER_BENCH_SIZES)
    python bench/bench_split.py --sizes 100k,1m --name split-1m     (an extra row set; run_all.py shows it too)
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    BASE_PORT,
    SECOND_PORT,
    Result,
    ansible_fixed_cost,
    arg_parser,
    breakdown,
    lab_running,
    log,
    main_guard,
    parse_sizes,
    ratio,
    rounded,
    run_split,
    split_done,
)

DEFAULT_SIZES = "20k,100k"
COPY_BATCH = 1000


# -- the copy-based baseline ---------------------------------------------------------------------------
def shrink_to_two(lab: Any) -> None:
    """Make the copy target look like rs2: two data nodes. Removes node4, then node3 (one voter per reconfig),
    then stops them."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    with MongoClient(lab.layout.host("node1").host, directConnection=True, serverSelectionTimeoutMS=10000) as client:
        for name in ("node4", "node3"):
            host = lab.layout.host(name).host
            deadline = time.monotonic() + 120
            while True:
                config = client.admin.command("replSetGetConfig")["config"]
                config["members"] = [m for m in config["members"] if m["host"] != host]
                config["version"] += 1
                try:
                    client.admin.command("replSetReconfig", config, maxTimeMS=60_000)
                    break
                except OperationFailure as exc:  # the previous reconfig still commits
                    if exc.code not in (109, 308) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
    lab.stop_hosts(["node3", "node4"])


def copy_half(source: Any, target: Any, routing: Any, set_name: str, database: str = "app") -> dict[str, Any]:
    """Copy `set_name`'s half of every routed collection of `database` from source to target (raw BSON,
    batches of COPY_BATCH, w: majority, one thread per collection), then the same secondary indexes."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = CodecOptions(document_class=RawBSONDocument)
    names = [n for n in source[database].list_collection_names() if routing.routed(database, n) is not None]

    def one(name: str) -> tuple[int, int]:
        src = source.get_database(database, codec_options=raw)[name]
        dst = target.get_database(database, codec_options=raw)[name]
        query = routing.half_filter(routing.key_for(database, name), set_name)
        written, batch = 0, []
        for doc in src.find(query, batch_size=2000):
            batch.append(doc)
            if len(batch) >= COPY_BATCH:
                dst.insert_many(batch, ordered=False)
                written, batch = written + len(batch), []
        if batch:
            dst.insert_many(batch, ordered=False)
            written += len(batch)
        for index in source[database][name].list_indexes():
            if index["name"] == "_id_":
                continue
            options = {k: v for k, v in index.items() if k not in ("v", "key", "ns")}
            target[database][name].create_index(list(index["key"].items()), **options)
        return written, source[database][name].estimated_document_count()

    started = time.monotonic()
    with ThreadPoolExecutor(max(len(names), 1)) as pool:
        counts = list(pool.map(one, names))
    seconds = time.monotonic() - started
    size = sum(data_size(source, database, n) for n in names)
    return {"seconds": round(seconds, 2), "collections": len(names), "docs_scanned": sum(c[1] for c in counts),
            "docs_written": sum(c[0] for c in counts), "bytes_scanned": size,
            "mb_scanned_per_s": round(size / 1e6 / seconds, 1) if seconds > 0 else None}


def data_size(client: Any, database: str, name: str) -> int:
    """Uncompressed size of a collection's documents (collStats size)."""
    stats = next(client[database][name].aggregate([{"$collStats": {"storageStats": {}}}]), {})
    return int(stats.get("storageStats", {}).get("size", 0))


def copy_baseline(lab: Any, copy_lab: Any) -> dict[str, Any]:
    from pymongo import MongoClient

    from splitter.config import load_config

    routing = load_config(lab.layout.config_path).routing
    with MongoClient(lab.layout.connection_string, serverSelectionTimeoutMS=30000) as source, \
            MongoClient(copy_lab.layout.connection_string, serverSelectionTimeoutMS=30000) as target:
        target.drop_database("app")
        log("copy baseline: reading rs1, writing rs2's half into the fresh two-member set")
        copied = copy_half(source, target, routing, "rs2")
    log(f"copy baseline: {copied['docs_written']} documents in {copied['seconds']}s")
    return copied


# -- the table -------------------------------------------------------------------------------------------
def split_rows(result: Result, entries: list[dict[str, Any]]) -> None:
    """Rows: split vs copy per size; growth from the smallest to the largest size; where the time goes."""
    for entry in entries:
        copy = entry.get("copy", {}).get("seconds")
        result.row(f"split wall time, {entry['docs']:,} docs", entry["split_s"], copy, "s",
                   baseline_name="copy-based split",
                   note="" if entry is not entries[0] else "copy: rs2's half + indexes into a fresh set, "
                   "no catch-up, no cutover (a lower bound)")
    small, large = entries[0], entries[-1]
    if len(entries) >= 2:
        growth = ratio(large["split_s"], small["split_s"])
        copy_growth = ratio(large.get("copy", {}).get("seconds"), small.get("copy", {}).get("seconds"))
        result.row(f"time growth {large['docs']:,} / {small['docs']:,} docs (data x{large['docs'] / small['docs']:g})",
                   growth, copy_growth, "x", baseline_name="copy-based split",
                   note="near 1 means: no data is copied")
    last = entries[-1]
    parts = last["breakdown"]
    result.row(f"split time waiting on mongod, {last['docs']:,} docs", parts["waiting_on_mongod_s"], parts["wall_s"],
               "s", baseline_name="split wall time",
               note=f"Ansible {parts['ansible_s']:.0f}s ({parts['playbooks']} playbooks), orchestrator's own "
                    f"{parts['orchestrator_own_s']:.0f}s (catch-up + verify {parts['catchup_and_verify_s']:.0f}s)")
    crossover = crossover_docs(entries)
    if crossover is not None:
        result.results["copy_slower_than_split_above_docs"] = crossover
        note = f"; a copy would take longer than the split above ~{crossover:,} docs"
        copy = large.get("copy", {}) if len(entries) >= 2 else {}
        if copy.get("bytes_scanned") and copy.get("docs_scanned"):
            gigabytes = crossover * copy["bytes_scanned"] / copy["docs_scanned"] / 1e9
            result.results["copy_slower_than_split_above_gb"] = round(gigabytes, 2)
            note += f" (~{gigabytes:.2g} GB of documents; copy read {copy['mb_scanned_per_s']} MB/s here)"
        result.rows[-1]["note"] += note


def crossover_docs(entries: list[dict[str, Any]]) -> int | None:
    """Extrapolated size from which the copy baseline takes longer than the split (copy time linear in size,
    the split's time taken from the largest size)."""
    with_copy = [e for e in entries if e.get("copy", {}).get("seconds")]
    if len(with_copy) < 2:
        return None
    small, large = with_copy[0], with_copy[-1]
    slope = (large["copy"]["seconds"] - small["copy"]["seconds"]) / (large["docs"] - small["docs"])
    if slope <= 0:
        return None
    offset = small["copy"]["seconds"] - slope * small["docs"]
    return round_to(max(int((large["split_s"] - offset) / slope), 0))


def round_to(value: int, digits: int = 2) -> int:
    """To `digits` significant digits: 2_390_199 -> 2_400_000."""
    return value if value == 0 else int(round(value, digits - len(str(abs(value)))))


# -- main -----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("Split time vs data size beside a copy-based split; where the time goes.")
    parser.add_argument("--sizes", default=os.environ.get("SPLITTER_BENCH_SIZES") or DEFAULT_SIZES,
                        help=f"document counts, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--no-copy", action="store_true", help="skip the copy-based baseline")
    parser.add_argument("--name", default="split", help="result name: bench/results/NAME.json (default split; "
                                                        "e.g. split-1m for an extra run with --sizes 100k,1m)")
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    result = Result(args.name, params={"sizes": sizes, "copy_target": "two-member replica set (w: majority)",
                                     "copy_batch": COPY_BATCH, "ports": [BASE_PORT, SECOND_PORT]})

    def body() -> None:
        entries: list[dict[str, Any]] = []
        result.results["sizes"] = entries
        fixed: float | None = None
        with ExitStack() as stack:
            copy_lab = None
            if args.no_copy:
                result.skip("copy baseline", "--no-copy")
            else:
                copy_lab = stack.enter_context(lab_running(1000, SECOND_PORT, "copy-target"))
                shrink_to_two(copy_lab)
            for size in sizes:
                with lab_running(size, BASE_PORT, f"split-{size}") as lab:
                    if fixed is None:
                        fixed = ansible_fixed_cost(lab)
                        result.results["ansible_noop_playbook_s"] = round(fixed, 2)
                    entry: dict[str, Any] = {"docs": size}
                    if copy_lab is not None:
                        entry["copy"] = copy_baseline(lab, copy_lab)
                    run = run_split(lab)
                    entry["split_s"] = round(run.wall, 2)
                    entry["cutover"] = split_done(lab)
                    entry["breakdown"] = breakdown(run.wall, run.audit, run.waits, run.checks, fixed, run.steps)
                    entry["split_vs_copy"] = ratio(run.wall, entry.get("copy", {}).get("seconds"))
                    log(f"split of {size} docs: {run.wall:.1f}s")
                    entries.append(entry)
        split_rows(result, entries)
        result.results["split_growth"] = ratio(entries[-1]["split_s"], entries[0]["split_s"])
        result.results["fastest_split_s"] = rounded(min(e["split_s"] for e in entries), 2)

    return main_guard(result, body, args.out)


if __name__ == "__main__":
    sys.exit(main())
