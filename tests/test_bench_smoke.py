"""The benchmarks' pure parts, without mongod: statistics, ratios, the time breakdown, the JSON line, the table."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

from bench import bench_availability, bench_catchup, bench_cleanup, bench_split, bench_verify, common, run_all
from splitter.events import EventBus, EventType


def test_every_script_has_a_main() -> None:
    for module in (bench_availability, bench_catchup, bench_cleanup, bench_split, bench_verify, run_all):
        assert callable(module.main)


def test_percentile_interpolates_like_numpy() -> None:
    values = list(range(1, 101))
    assert common.percentile(values, 50) == pytest.approx(50.5)
    assert common.percentile(values, 99) == pytest.approx(99.01)
    assert common.percentile(values, 0) == 1
    assert common.percentile(values, 100) == 100
    assert common.percentile([7.0], 99) == 7.0
    assert common.percentile([], 50) is None
    assert common.percentile([3, 1, 2], 50) == 2
    with pytest.raises(ValueError):
        common.percentile([1], 101)


def test_ratio_and_rates() -> None:
    assert common.ratio(2, 4) == 0.5
    assert common.ratio(1, 3) == 0.333
    assert common.ratio(1, 0) is None
    assert common.ratio(None, 2) is None
    assert common.ratio(2, None) is None
    assert common.per_second(100, 4) == 25.0
    assert common.per_second(100, 0) is None


def test_counts_and_sizes() -> None:
    assert common.parse_count("20000") == 20_000
    assert common.parse_count("20k") == 20_000
    assert common.parse_count("1m") == 1_000_000
    assert common.parse_count("1_000") == 1_000
    assert common.parse_sizes("20k, 100k") == [20_000, 100_000]
    for bad in ("", "x", "0", "1.5"):
        with pytest.raises(ValueError):
            common.parse_count(bad)


def test_longest_gap_includes_the_edges() -> None:
    assert common.longest_gap([1.0, 2.0, 2.5], 0.0, 10.0) == 7.5
    assert common.longest_gap_at([1.0, 5.0, 6.0], 0.0, 7.0) == (4.0, 1.0)
    assert common.longest_gap([], 2.0, 3.0) == 1.0
    assert common.longest_gap([100.0], 0.0, 1.0) == 1.0  # outside the window: ignored


def test_latency_summary_in_milliseconds() -> None:
    summary = common.latency_summary([0.001] * 99 + [0.1])
    assert summary["n"] == 100
    assert summary["p50_ms"] == 1.0
    assert summary["max_ms"] == 100.0
    assert 1.0 < summary["p99_ms"] <= 100.0
    assert common.latency_summary([])["p99_ms"] is None


def test_result_emits_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "machine", lambda: {"cpu": "test"})  # no `mongod --version` here
    result = common.Result("demo", params={"docs": 10})
    result.row("thing, docs/s", 80.0, 100.0, "docs/s", baseline_name="baseline")
    result.skip("part", "not there yet")
    result.results["nested"] = {"a": [1, 2]}
    line = result.emit(tmp_path)
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and printed.strip() == line
    record = json.loads(line)
    assert record["bench"] == "demo" and record["machine"] == {"cpu": "test"}
    assert record["rows"][0]["ratio"] == 0.8
    assert record["skipped"] == {"part": {"skipped": "not there yet"}}
    assert len(record["load_avg"]["start"]) in (0, 3)
    assert (tmp_path / "demo.json").read_text() == line + "\n"


def test_main_guard_emits_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "machine", lambda: {})
    result = common.Result("broken")

    def body() -> None:
        raise RuntimeError("no lab")

    assert common.main_guard(result, body, tmp_path) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "RuntimeError: no lab"


def test_json_line_has_no_newline() -> None:
    line = common.json_line({"a": "x\ny", "b": [1, 2], "c": {"d": None}})
    assert "\n" not in line
    assert json.loads(line)["a"] == "x\ny"


def test_the_split_is_observed_through_events_only() -> None:
    """A plain EventBus subscriber measures steps, waits, host checks and actions; before_step hears step.started."""
    run = common.SplitRun()
    bus = EventBus()
    origin = time.monotonic()
    bus.subscribe(common.SplitObserver(run, origin, echo=False))
    started: list[str] = []
    bus.subscribe(lambda e: started.append(e.step), types={EventType.STEP_STARTED}, blocking=True)
    with bus.in_step("preflight"):
        bus.emit(EventType.STEP_STARTED, "[preflight] Preflight")
        bus.emit(EventType.HOST_CHECK, "check ping.yml @ node1", playbook="ping.yml", hosts=["node1"], seconds=0.0)
        bus.emit(EventType.WAITING, "waiting for x (5s)", what="x", state="waiting", seconds=5.0)  # not finished
        bus.emit(EventType.STEP_DONE, "[preflight] done", seconds=0.1, attempts=1)
    with bus.in_step("start-rs2"):
        bus.emit(EventType.STEP_STARTED, "[start-rs2] Start rs2")
        bus.emit(EventType.ACTION, "playbook mongod_start.yml @ node3", what="playbook mongod_start.yml",
                 where="node3", result="ok", seconds=0.0)
        bus.emit(EventType.WAITING, "waited 0.0s for rs2 PRIMARY", level="debug", what="rs2 PRIMARY", state="done",
                 seconds=0.0)
        bus.emit(EventType.STEP_DONE, "[start-rs2] done", seconds=0.2, attempts=1)
    assert list(run.steps) == ["preflight", "start-rs2"] and started == ["preflight", "start-rs2"]
    assert all(0 <= start <= end <= time.monotonic() - origin for start, end in run.steps.values())
    assert [(c["playbook"], c["step"]) for c in run.checks] == [("ping.yml", "preflight")]
    assert [(w["what"], w["step"]) for w in run.waits] == [("rs2 PRIMARY", "start-rs2")]
    assert [(a["what"], a["step"]) for a in run.audit] == [("playbook mongod_start.yml", "start-rs2")]
    common.rebase(run, 1.0)
    assert run.waits[0]["start"] < 0 and run.steps["preflight"][0] < 0


def test_bench_common_replaces_no_method() -> None:
    """The bench measures through the event stream: nothing in bench/ assigns over a method of the engine's
    objects (it used to replace ctx.wait_for, applier.playbook, adapter.run and step.apply)."""
    from splitter.cluster.applier import Applier
    from splitter.hosts.ansible_adapter import AnsibleAdapter
    from splitter.run_context import StepContext
    from splitter.steps.base import Step

    methods = {name for cls in (Applier, AnsibleAdapter, Step, StepContext) for name in dir(cls)
               if callable(getattr(cls, name)) and not name.startswith("__")}
    for path in sorted(Path(common.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) != "self":
                    assert target.attr not in methods, f"{path.name}:{node.lineno} replaces .{target.attr}"


def test_classify() -> None:
    assert common.classify_action("playbook mongod_start.yml") == "startup"
    assert common.classify_action("playbook mongod_stop.yml") == "shutdown"
    assert common.classify_action("shutdown") == "shutdown"
    assert common.classify_action("playbook prepare_dbpath.yml") == "dbpath_prep"
    assert common.classify_action("replSetReconfig: demote node3") == "reconfig_and_commands"
    assert common.classify_wait("the moving nodes to catch up") == "secondary_catchup"
    assert common.classify_wait("rs2 PRIMARY and SECONDARY") == "elections"
    assert common.classify_wait("something else") == "other_waits"


def test_breakdown_splits_mongod_ansible_and_own_time() -> None:
    audit = [{"what": "playbook mongod_start.yml", "seconds": 10.0, "step": "start-rs2"},
             {"what": "shutdown", "seconds": 2.0, "step": "stop-moving-nodes"},
             {"what": "replSetReconfig: remove node3", "seconds": 1.0, "step": "remove-moving-nodes"}]
    waits = [{"what": "rs2 PRIMARY and SECONDARY", "seconds": 3.0, "step": "start-rs2"}]
    checks = [{"playbook": "ping.yml", "seconds": 4.0, "step": "preflight"}]
    steps = {"preflight": (0.0, 5.0), "start-rs2": (10.0, 24.0), "catch-up": (24.0, 26.0)}
    parts = common.breakdown(30.0, audit, waits, checks, ansible_fixed=3.0, steps=steps)
    assert parts["waiting_on_mongod_s"] == 13.0  # 7 startup + 2 shutdown + 1 reconfig + 3 election
    assert parts["ansible_s"] == 7.0  # 3 fixed of the start playbook + the 4 s check
    assert parts["orchestrator_own_s"] == 10.0
    assert parts["mongod"]["startup_s"] == 7.0 and parts["mongod"]["elections_s"] == 3.0
    assert parts["playbooks"] == 2
    assert parts["waiting_on_mongod_fraction"] == common.ratio(13.0, 30.0)
    assert parts["steps"]["start-rs2"] == {"wall_s": 14.0, "mongod_s": 10.0, "ansible_s": 3.0, "own_s": 1.0}
    assert parts["steps"]["preflight"]["ansible_s"] == 4.0
    assert parts["catchup_and_verify_s"] == 2.0


def test_split_rows_and_crossover() -> None:
    entries = [{"docs": 10_000, "split_s": 100.0, "copy": {"seconds": 2.0}, "breakdown": _parts()},
               {"docs": 100_000, "split_s": 110.0, "breakdown": _parts(),
                "copy": {"seconds": 20.0, "bytes_scanned": 100_000_000, "docs_scanned": 100_000,
                         "mb_scanned_per_s": 5}}]
    assert bench_split.crossover_docs(entries) == 550_000  # copy: 0.2 ms per doc, split 110 s
    assert bench_split.round_to(2_390_199) == 2_400_000 and bench_split.round_to(0) == 0
    assert bench_split.crossover_docs(entries[:1]) is None
    result = common.Result("split")
    bench_split.split_rows(result, entries)
    growth = next(r for r in result.rows if r["measure"].startswith("time growth"))
    assert growth["tool"] == 1.1 and growth["baseline"] == 10.0 and growth["ratio"] == 0.11
    assert result.rows[0]["ratio"] == 50.0
    assert "550,000 docs (~0.55 GB of documents; copy read 5 MB/s here)" in result.rows[-1]["note"]
    assert result.results["copy_slower_than_split_above_gb"] == 0.55


def _parts() -> dict:
    return common.breakdown(100.0, [], [], [], 0.0)


def test_availability_summary_from_samples() -> None:
    loop = common.OpLoop(lambda n: None)
    loop.started, loop.stopped = 0.0, 30.0
    loop.samples = [common.OpSample(t, t + 0.01, True) for t in (1.0, 2.0, 3.0, 10.5, 11.0, 12.0, 18.0, 19.0)]
    loop.samples.append(common.OpSample(13.0, 15.0, False))
    run = common.SplitRun(wall=10.0, origin=10.0, steps={"a": (0.0, 4.0), "b": (4.0, 10.0)})
    found = bench_availability.availability(loop, run, baseline_start=0.0)
    assert found["during_split"]["failed"] == 1
    assert found["failed_by_step"] == {"a": 1}
    assert found["longest_gap_s"] == pytest.approx(6.0)
    assert found["longest_gap_step"] == "a"
    assert found["baseline"]["ok"] == 3
    writer = bench_availability.AppWriter.__new__(bench_availability.AppWriter)
    writer.routed = False
    assert writer.key(3) == 3
    writer.before_step("deploy-client-v2")
    assert writer.key(3) == 6


def test_oploop_records_successes_and_failures() -> None:
    def op(n: int) -> None:
        if n % 3 == 0:
            raise RuntimeError("boom")

    loop = common.OpLoop(op, threads=2, interval=0.001).start()
    time.sleep(0.05)
    loop.stop()
    summary = loop.summary()
    assert summary["ops"] == len(loop.samples) > 0
    assert summary["failed"] >= 1 and summary["ok"] >= 1
    assert loop.errors[0].startswith("RuntimeError")


def test_cleanup_helpers() -> None:
    assert bench_cleanup.delete_filter() == {"user_id": {"$mod": [2, 1]}}
    routing = bench_cleanup.routing_for("bench_cleanup_tool", ("users", "events"), only="users")
    assert routing.routed("bench_cleanup_tool", "users") is not None
    assert routing.routed("bench_cleanup_tool", "events") is None
    assert routing.routed("app", "users") is None


def test_catchup_helpers() -> None:
    samples = [{"lag_s": 0.0, "lag_events": 10, "node2_lag_s": 0.0}, {"lag_s": 1.0, "lag_events": 30},
               {"lag_s": None, "lag_events": None, "node2_lag_s": 1.0}]
    summary = bench_catchup.lag_summary(samples)
    assert summary == {"samples": 3, "events_p50": 20.0, "events_max": 30, "seconds_p50": 0.5, "seconds_p99": 0.99,
                       "seconds_max": 1.0, "node2_seconds_p99": 0.99}

    class Coll:
        def insert_one(self, doc: dict) -> None:
            self.last = doc

    writer = bench_catchup.MixedWriter.__new__(bench_catchup.MixedWriter)
    writer.coll, writer.changes = Coll(), []
    writer.op(12)
    assert writer.coll.last["user_id"] == 12
    assert writer.events(0, time.monotonic() + 1) == 1


def test_verify_best_is_the_fastest() -> None:
    assert bench_verify.best([3.0, 1.5, 2.0]) == 1.5


def test_table_renders_rows_load_and_skips() -> None:
    record = {"bench": "cleanup", "date": "2026-01-01T10:00:00+00:00",
              "load_avg": {"start": [1, 2, 3], "end": [2, 2, 2]},
              "params": {"docs": 10}, "skipped": {"naive": {"skipped": "no time"}},
              "rows": [{"measure": "cleanup unthrottled, docs/s", "tool": 900.0, "baseline": 1000.0, "unit": "docs/s",
                        "ratio": 0.9, "baseline_name": "deleteMany", "note": "target >= 0.8"}]}
    host = {"cpu": "Test CPU", "cores": 2, "ram_gb": 4.0, "mongod": "6.0.5", "os": "Linux", "python": "3.11"}
    table = run_all.render_table([record], host)
    assert "Test CPU" in table and "mongod 6.0.5" in table
    assert "| cleanup | cleanup unthrottled, docs/s | 900 docs/s | 1,000 docs/s (deleteMany) | 0.9 | target >= 0.8 |" \
        in table
    assert "cleanup 1.0/2.0/3.0 → 2.0/2.0/2.0 (2026-01-01 10:00)" in table
    assert "naive (no time)" in table
    failed = run_all.render_table([{"bench": "split", "error": "RuntimeError: x", "rows": []}], host)
    assert "**failed**" in failed


def test_fmt() -> None:
    assert run_all.fmt(None, "s") == "-"
    assert run_all.fmt(160.04, "s") == "160.0 s"
    assert run_all.fmt(0.123, "s") == "0.12 s"
    assert run_all.fmt(1.034, "x") == "1.03x"
    assert run_all.fmt(12.345, "ms") == "12.3 ms"
    assert run_all.fmt(3, "writes") == "3"
    assert run_all.fmt_ratio(0.80123) == "0.801"
    assert run_all.fmt_ratio(400.2) == "400"


def test_cleanup_combine_sums_rounds() -> None:
    runs = [{"deleted": 10, "seconds": 1.0}, {"deleted": 30, "seconds": 2.0}]
    assert bench_cleanup.combine(runs) == {"deleted": 40, "seconds": 3.0, "runs": runs}


def test_read_results_known_names_first_then_extras(tmp_path: Path) -> None:
    for name in ("split-1m", "verify", "split"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"bench": name}) + "\n")
    (tmp_path / "broken.json").write_text("")
    assert [r["bench"] for r in run_all.read_results(tmp_path)] == ["split", "verify", "split-1m"]
