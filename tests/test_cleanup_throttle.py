"""The cleanup Throttler and its latency budget: pure decisions from observations (no mongod, no clock)."""

from __future__ import annotations

from datetime import datetime

import pytest

from splitter.cleanup.budget import Budget, LatencyStats, Pace, parse_increase, parse_latency, with_limits
from splitter.cleanup.throttle import Decision, Limits, Observation, Throttler, Window, fmt_seconds, parse_sleep

DAY = datetime(2024, 5, 17)


def at(hhmm: str, day: datetime = DAY) -> datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return day.replace(hour=hour, minute=minute)


def obs(now: str = "12:00", elapsed: float = 0.0, deleted: int = 0, **kwargs) -> Observation:
    return Observation(now=at(now), elapsed=elapsed, deleted=deleted, **kwargs)


# -- window ---------------------------------------------------------------------------------------------
def test_window_same_day() -> None:
    w = Window.parse("01:00-05:30")
    assert str(w) == "01:00-05:30" and not w.crosses_midnight and w.length == 4.5 * 3600
    assert w.contains(at("01:00")) and w.contains(at("05:29"))
    assert not w.contains(at("05:30")) and not w.contains(at("00:59")) and not w.contains(at("23:00"))
    assert w.seconds_left(at("05:00")) == 1800 and w.seconds_left(at("06:00")) == 0


def test_window_across_midnight() -> None:
    w = Window.parse("22:00-02:00")
    assert w.crosses_midnight and w.length == 4 * 3600
    assert w.contains(at("22:00")) and w.contains(at("23:59")) and w.contains(at("00:00")) and w.contains(at("01:59"))
    assert not w.contains(at("02:00")) and not w.contains(at("12:00")) and not w.contains(at("21:59"))
    assert w.seconds_left(at("23:00")) == 3 * 3600  # the end is on the next day
    assert w.seconds_left(at("01:00")) == 3600


@pytest.mark.parametrize("text", ["1-5", "25:00-01:00", "01:60-02:00", "03:00-03:00", "", "01:00"])
def test_window_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Window.parse(text)


def test_opening_outside_and_inside_window() -> None:
    throttler = Throttler(Limits(window=Window.parse("22:00-02:00")))
    outside = throttler.opening(at("12:00"))
    assert outside.action == "stop" and outside.kind == "window"
    assert "outside the window 22:00-02:00" in outside.reason and "12:00" in outside.reason
    assert throttler.opening(at("23:30")).action == "go"
    assert throttler.opening(at("00:30")).action == "go"
    assert Throttler(Limits()).opening(at("12:00")) == Decision.go()


def test_window_closing_mid_run_stops() -> None:
    throttler = Throttler(Limits(window=Window.parse("22:00-02:00")))
    assert throttler.decide(obs("01:59")).action == "go"
    closed = throttler.decide(obs("02:00"))
    assert closed.action == "stop" and closed.kind == "window" and "closed" in closed.reason


# -- limits ---------------------------------------------------------------------------------------------
def test_max_docs_stops_and_batches_shrink_to_the_limit() -> None:
    throttler = Throttler(Limits(max_docs=1000))
    assert throttler.decide(obs(deleted=999)).action == "go"
    stop = throttler.decide(obs(deleted=1000))
    assert stop.action == "stop" and stop.kind == "max-docs" and "--max-docs 1000" in stop.reason
    assert throttler.batch_quota(0, 300) == 300
    assert throttler.batch_quota(900, 300) == 100
    assert throttler.batch_quota(1000, 300) == 0
    assert Throttler(Limits()).batch_quota(10**9, 300) == 300


def test_max_runtime_stops() -> None:
    throttler = Throttler(Limits(max_runtime=90))
    assert throttler.decide(obs(elapsed=89.9)).action == "go"
    stop = throttler.decide(obs(elapsed=90))
    assert stop.action == "stop" and stop.kind == "max-runtime" and "1m30s" in stop.reason


def test_stop_request_wins_over_everything() -> None:
    throttler = Throttler(Limits(max_lag=1))
    decision = throttler.decide(obs(stop_requested="stopped by SIGTERM", paused="x", lags={"h:1": 50}))
    assert decision.action == "stop" and decision.kind == "signal" and decision.reason == "stopped by SIGTERM"


# -- waits ----------------------------------------------------------------------------------------------
def test_lag_above_waits_below_goes() -> None:
    throttler = Throttler(Limits(max_lag=10, lag_poll=2))
    assert throttler.decide(obs(lags={"a:1": 9.9, "b:1": 0.0})).action == "go"
    assert throttler.decide(obs(lags={"a:1": 10.0})).action == "go"  # "more than" the limit
    wait = throttler.decide(obs(lags={"a:1": 12.5, "b:1": 30.0, "c:1": 1.0}))
    assert wait.action == "wait" and wait.kind == "lag" and wait.seconds == 2
    assert "b:1" in wait.reason and "30s" in wait.reason and "and 1 more" in wait.reason
    assert "--max-lag 10s" in wait.reason


def test_lag_ignored_without_max_lag_and_unreadable_lag_waits() -> None:
    assert Throttler(Limits()).decide(obs(lags={"a:1": 1e6})).action == "go"
    wait = Throttler(Limits(max_lag=5)).decide(obs(lag_error="the set has no primary"))
    assert wait.action == "wait" and wait.kind == "lag" and "no primary" in wait.reason


def test_pause_waits_and_limits_still_stop_while_paused() -> None:
    throttler = Throttler(Limits(max_runtime=60, pause_poll=1))
    wait = throttler.decide(obs(elapsed=10, paused="the pause file /s/cleanup.pause exists"))
    assert wait.action == "wait" and wait.kind == "pause" and "cleanup.pause" in wait.reason
    assert throttler.decide(obs(elapsed=60, paused="x")).kind == "max-runtime"


def test_waits_never_pass_the_runtime_limit_or_the_window_end() -> None:
    throttler = Throttler(Limits(max_runtime=100, max_lag=1, lag_poll=30))
    assert throttler.decide(obs(elapsed=95, lags={"a:1": 5})).seconds == pytest.approx(5)
    windowed = Throttler(Limits(window=Window.parse("01:00-02:00"), pause_poll=600))
    assert windowed.decide(obs("01:59", paused="x")).seconds == pytest.approx(60)


# -- rest between batches -------------------------------------------------------------------------------
def test_rest_after_batch_sleep_and_duty_cycle() -> None:
    assert Throttler(Limits(sleep=0.5)).rest_after(2.0, at("12:00"), 0) == 0.5
    # 25 % duty: a 1 s batch is followed by 3 s of rest
    assert Throttler(Limits(duty_cycle=0.25)).rest_after(1.0, at("12:00"), 0) == pytest.approx(3.0)
    assert Throttler(Limits(duty_cycle=1.0)).rest_after(1.0, at("12:00"), 0) == 0
    assert Throttler(Limits(sleep=10, max_runtime=20)).rest_after(1.0, at("12:00"), 15) == pytest.approx(5)


def test_parse_sleep() -> None:
    assert parse_sleep("200ms") == (pytest.approx(0.2), None)
    assert parse_sleep("2s") == (2.0, None)
    assert parse_sleep("30%") == (0.0, pytest.approx(0.3))
    for bad in ("0%", "150%", "fast"):
        with pytest.raises(ValueError):
            parse_sleep(bad)


def test_fmt_seconds() -> None:
    assert fmt_seconds(1.5) == "1.5s" and fmt_seconds(10) == "10s"
    assert fmt_seconds(95) == "1m35s" and fmt_seconds(7260) == "2h01m"


# -- member health ----------------------------------------------------------------------------------------
def test_an_unhealthy_secondary_is_waited_for_not_ignored() -> None:
    throttler = Throttler(Limits(max_lag=10, lag_poll=2))
    for state in ("DOWN", "RECOVERING", "ROLLBACK", "unreachable"):
        wait = throttler.decide(obs(lags={"a:1": 0.0}, unhealthy={"b:1": state}))
        assert wait.action == "wait" and wait.kind == "health" and wait.seconds == 2
        assert f"secondary b:1 is {state}, not a healthy SECONDARY" in wait.reason and "--max-lag" in wait.reason
    two = throttler.decide(obs(unhealthy={"b:1": "DOWN", "c:1": "ROLLBACK"}))
    assert "and 1 more" in two.reason
    assert Throttler(Limits()).decide(obs(unhealthy={"b:1": "DOWN"})).action == "go"  # no --max-lag, no check


# -- the latency budget -----------------------------------------------------------------------------------
BASE = LatencyStats(40, p50=2.0, p90=4.0, p99=6.0)


def budgeted(**kwargs) -> Throttler:
    return Throttler(Limits(budget=Budget(**kwargs)))


def test_budget_parsing() -> None:
    assert parse_increase("1.5x") == 1.5 and parse_increase("2") == 2.0 and parse_increase("off") is None
    assert parse_latency("20ms") == pytest.approx(20.0) and parse_latency("none") is None
    for bad in ("1x", "0.5x", "fast"):
        with pytest.raises(ValueError):
            parse_increase(bad)
    with pytest.raises(ValueError):
        parse_latency("0ms")


def test_latency_stats_read_small_windows_conservatively() -> None:
    stats = LatencyStats.of([0.001 * i for i in range(1, 21)])  # 1..20 ms
    assert stats.n == 20 and stats.p50 == pytest.approx(10) and stats.p90 == pytest.approx(18)
    assert stats.p99 == pytest.approx(20)  # 20 samples: the p99 is the maximum
    assert LatencyStats.of([]) == LatencyStats(0)


def test_budget_measures_a_baseline_first_and_again_later() -> None:
    throttler = budgeted(calibrate=2.0, recalibrate_every=300)
    first = throttler.decide(obs(pace=Pace(100, 0.25)))
    assert first.action == "wait" and first.kind == "calibrate" and first.seconds == 2.0
    assert "measuring the write latency without deletes" in first.reason
    again = throttler.decide(obs(pace=Pace(100, 0.25), baseline=BASE, baseline_age=300))
    assert again.kind == "calibrate" and "again" in again.reason
    assert throttler.decide(obs(pace=Pace(100, 0.25), baseline=BASE, baseline_age=10)).action == "go"


def test_budget_slows_down_when_the_probe_s_p99_is_over_and_speeds_up_while_under() -> None:
    throttler = budgeted(increase=1.5, max_batch=1000)
    pace = Pace(400, 0.5)
    over = throttler.decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(40, 3.0, 7.0, 10.0)))
    assert over.action == "go" and over.kind == "latency" and over.pace == Pace(200, 0.25)
    assert over.reason == ("write latency p50 3.0ms, p90 7.0ms, p99 10.0ms over 40 probes against a budget of "
                           "p99 <= 1.5x baseline = 9.0ms: over, slowing to batch 200, 25% of the time")
    under = throttler.decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(40, 2.0, 5.0, 7.0)))
    assert under.action == "go" and under.pace == Pace(500, 0.55) and "within, speeding up to batch 500" in under.reason
    far = throttler.decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(40, 2.0, 3.0, 4.0)))
    assert far.pace == Pace(600, 0.75) and "within, speeding up to batch 600, 75% of the time" in far.reason
    near = throttler.decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(40, 2.0, 5.0, 8.5)))
    assert near == Decision.go()  # 0.94 of the line: held there, growing would overshoot it
    few = throttler.decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(29, 30.0, 30.0, 30.0)))
    assert few == Decision.go()  # too few probes at this pace to judge it
    top = budgeted(max_batch=400, max_duty=0.5).decide(obs(pace=pace, baseline=BASE, latency=LatencyStats(40)))
    assert top == Decision.go()  # at the ceiling (--batch-size, --sleep N%): nothing to say


def test_budget_pauses_when_far_over_or_already_at_the_slowest_pace() -> None:
    throttler = budgeted(increase=1.5, critical=2.0, critical_pause=2.0, min_batch=20, min_duty=0.02)
    critical = throttler.decide(obs(pace=Pace(400, 0.5), baseline=BASE, latency=LatencyStats(40, 9.0, 13.0, 20.0)))
    assert critical.action == "wait" and critical.kind == "latency" and critical.seconds == 2.0
    assert critical.pace == Pace(20, 0.02) and "2.2x over, pausing 2s, then batch 20, 2% of the time" in critical.reason
    lone = throttler.decide(obs(pace=Pace(400, 0.5), baseline=BASE, latency=LatencyStats(40, 3.0, 5.0, 50.0)))
    assert lone.action == "go" and lone.pace == Pace(200, 0.25)  # one slow probe in 40: slowed, not paused
    floor = throttler.decide(obs(pace=Pace(20, 0.02), baseline=BASE, latency=LatencyStats(40, 3.0, 7.0, 10.0)))
    assert floor.action == "wait" and "over at the slowest pace" in floor.reason and floor.pace == Pace(20, 0.02)


def test_one_slow_probe_while_calibrating_does_not_loosen_the_budget() -> None:
    spiky = LatencyStats(90, p50=4.0, p90=6.0, p99=30.0)  # one 30 ms probe among 90 of ~4-6 ms
    over = budgeted(increase=1.5).decide(obs(pace=Pace(100, 0.5), baseline=spiky, latency=LatencyStats(40, 5, 9, 20)))
    assert over.pace == Pace(50, 0.25) and "p99 <= 1.5x baseline = 18.0ms: over" in over.reason  # not 45 ms


def test_an_absolute_p99_budget_needs_no_baseline_ratio() -> None:
    throttler = budgeted(increase=None, max_p99_ms=20.0)
    over = throttler.decide(obs(pace=Pace(100, 0.5), baseline=LatencyStats(0), latency=LatencyStats(40, 5, 10, 25)))
    assert over.pace == Pace(50, 0.25) and "p99 <= 20ms" in over.reason
    assert Throttler(Limits(budget=Budget(increase=None))).decide(obs(pace=Pace(100, 0.5))) == Decision.go()


def test_the_pace_sets_the_rest_and_the_operator_bounds_it() -> None:
    throttler = budgeted()
    assert throttler.limits.rests
    assert throttler.rest_after(0.1, at("12:00"), 0, Pace(100, 0.25)) == pytest.approx(0.3)
    assert throttler.rest_after(0.1, at("12:00"), 0, Pace(100, 1.0)) == 0
    bounded = with_limits(Budget(), max_batch=300, max_duty=0.2)
    assert bounded.start() == Pace(20, 0.1) and bounded.faster(Pace(290, 0.2)) == Pace(300, 0.2)
    assert bounded.slower(Pace(30, 0.03)) == Pace(20, 0.02)
