"""The options of one `splitter cleanup` invocation, parsed and checked (BadInput, before anything is touched)."""

from __future__ import annotations

from dataclasses import dataclass

from splitter.cleanup.budget import Budget, parse_increase, parse_latency, with_limits
from splitter.cleanup.throttle import Limits, Window, parse_sleep
from splitter.config import SplitConfig, parse_duration
from splitter.errors import BadInput

PARALLEL_UNTHROTTLED = 4
DEFAULT_MAX_LATENCY_INCREASE = "1.5x"


@dataclass(frozen=True)
class Options:
    """The parsed command line."""

    set_choice: str
    dry_run: bool
    batch_size: int
    parallel: int
    limits: Limits
    as_json: bool
    schedule_args: tuple[tuple[str, str], ...]
    remove_orphans: bool = False
    exact_counts: bool = False


def chosen_sets(config: SplitConfig, choice: str) -> list[str]:
    """`--set`: one set of the split by its name in split.yaml, or both."""
    names = [config.source.name, config.target.name]
    if choice == "both":
        return names
    if choice not in names:
        raise BadInput(f"--set {choice!r}: use {names[0]}, {names[1]} or both (the set names in split.yaml)")
    return [choice]


def _duration(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"{name}: {exc}") from exc
    if value <= 0:
        raise BadInput(f"{name}: must be more than zero, got {text!r}")
    return value


def _budget(max_latency_increase: str, max_p99: str | None, batch_size: int, duty: float | None) -> Budget | None:
    try:
        budget = Budget(increase=parse_increase(max_latency_increase),
                        max_p99_ms=parse_latency(max_p99) if max_p99 else None)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    return with_limits(budget, max_batch=batch_size, max_duty=duty) if budget.enabled else None


def parse_options(config: SplitConfig, set_choice: str, *, dry_run: bool = False, batch_size: int = 1000,
                  parallel: int | None = None, max_docs: int | None = None, max_runtime: str | None = None,
                  max_lag: str | None = None, sleep: str = "0s", window: str | None = None,
                  max_latency_increase: str = DEFAULT_MAX_LATENCY_INCREASE, max_p99: str | None = None,
                  remove_orphans: bool = False, exact_counts: bool = False, as_json: bool = False) -> Options:
    chosen_sets(config, set_choice)
    try:
        sleep_seconds, duty = parse_sleep(sleep)
        parsed_window = Window.parse(window) if window else None
        lag = parse_duration(max_lag or config.planning.max_member_lag)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    limits = Limits(max_docs=max_docs, max_runtime=_duration("--max-runtime", max_runtime), max_lag=lag,
                    sleep=sleep_seconds, duty_cycle=duty, window=parsed_window,
                    budget=_budget(max_latency_increase, max_p99, batch_size, duty))
    given = (("--batch-size", str(batch_size)), ("--parallel", parallel), ("--max-docs", max_docs),
             ("--max-runtime", max_runtime), ("--max-lag", max_lag),
             ("--sleep", None if sleep in ("0", "0s") else sleep),
             ("--max-latency-increase", None if max_latency_increase == DEFAULT_MAX_LATENCY_INCREASE
              else max_latency_increase), ("--max-p99", max_p99))
    # The nightly run repeats the limits; --remove-orphans and --exact-counts stay the operator's own choice.
    schedule_args = tuple((name, str(value)) for name, value in given if value is not None)
    # Throttled runs delete one batch at a time, each acknowledged by a majority: several in flight let the
    # secondaries fall a chunk behind, and the application's w:"majority" writes wait for them (bench/README).
    return Options(set_choice, dry_run, batch_size, parallel or (1 if limits.rests else PARALLEL_UNTHROTTLED),
                   limits, as_json, schedule_args, remove_orphans, exact_counts)
