"""The cleanup Throttler: pure decisions from observations (no mongod, no clock)."""

from __future__ import annotations

from datetime import datetime

import pytest

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
