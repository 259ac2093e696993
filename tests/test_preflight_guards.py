"""Preflight guards as pure decisions over observed facts (a fake inspector): each refusal carries numbers.
The same guards run against real mongod in test_failures.py (disk, lag) and test_bad_input.py (topology)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from splitter.config import Planning
from splitter.steps.preflight import Preflight, PreflightRefused

HOSTS = ["a:1", "b:1", "c:1", "d:1"]


def _ctx(facts: dict, windows: dict | None = None, full: bool = True, **planning) -> SimpleNamespace:
    inspector = SimpleNamespace(server_facts=lambda h: facts[h],
                                oplog_window_seconds=lambda h: (windows or {}).get(h, 10**6))
    oplog_stats = {"maxSize": 100, "size": 95 if full else 10}
    member = SimpleNamespace(local=SimpleNamespace(command=lambda *a: oplog_stats))
    messages: list[str] = []
    return SimpleNamespace(keep_hosts=HOSTS[:2], move_hosts=HOSTS[2:], inspector=inspector,
                           member=lambda h: member, state=SimpleNamespace(oplog_window={}), messages=messages,
                           progress=messages.append, config=SimpleNamespace(planning=Planning(**planning)))


def _facts(version="6.0.5", fcv="6.0", free=0.5, **override) -> dict:
    facts = {h: {"version": version, "fcv": fcv, "free_fraction": free, "free_bytes": 10**9,
                 "data_bytes": 10**8} for h in HOSTS}
    for host, changes in override.items():
        facts[host.replace("_", ":")] = {**facts[host.replace("_", ":")], **changes}
    return facts


def test_healthy_facts_pass_and_record_the_oplog_window() -> None:
    ctx = _ctx(_facts())
    Preflight()._versions_disk_oplog(ctx)
    assert ctx.state.oplog_window == {"a:1": 10**6, "b:1": 10**6} and ctx.messages == []


@pytest.mark.parametrize(("facts", "expected"), [
    (_facts(c_1={"version": "6.0.4"}), "mixed versions/FCV: a:1 6.0.5/FCV 6.0"),
    (_facts(d_1={"fcv": "5.0"}), "d:1 6.0.5/FCV 5.0"),
    (_facts(version="4.2.1", fcv="4.2"), "older than 4.4"),
    (_facts(b_1={"free_fraction": 0.04, "data_bytes": 2 * 10**9}),
     "b:1: only 4.0% disk free (minimum 10%): 953.7 MiB free, less than the 1.9 GiB needed (1 x its 1.9 GiB of "
     "data)"),
])
def test_guards_refuse_with_the_numbers(facts: dict, expected: str) -> None:
    with pytest.raises(PreflightRefused) as err:
        Preflight()._versions_disk_oplog(_ctx(facts))
    assert expected in err.value.message


def test_a_low_share_of_a_disk_that_still_holds_the_data_twice_over_only_warns() -> None:
    ctx = _ctx(_facts(c_1={"free_fraction": 0.05}))
    Preflight()._versions_disk_oplog(ctx)
    assert ctx.messages == ["warning: c:1: only 5.0% disk free (minimum 10%), but its 953.7 MiB free cover the "
                            "95.4 MiB needed (1 x its 95.4 MiB of data)"]
    stricter = _ctx(_facts(c_1={"free_fraction": 0.05}), min_free_disk_vs_data=20)
    with pytest.raises(PreflightRefused) as err:
        Preflight()._versions_disk_oplog(stricter)
    assert "less than the 1.9 GiB needed (20 x its 95.4 MiB of data)" in err.value.message


def test_a_full_oplog_shorter_than_the_plan_is_refused_a_young_one_is_not() -> None:
    with pytest.raises(PreflightRefused) as err:
        Preflight()._versions_disk_oplog(_ctx(_facts(), windows={"a:1": 600}, expected_duration="2h"))
    assert "oplog window 600s is shorter than the planned 7200s" in err.value.message
    assert "replSetResizeOplog" in err.value.hint
    young = _ctx(_facts(), windows={"a:1": 600}, full=False, expected_duration="2h")
    Preflight()._versions_disk_oplog(young)
    assert young.messages == ["warning: a:1's oplog spans only 600s of the planned 7200s; it is not full yet, "
                              "but the catch-up needs the split optime to stay in it until the cutover"]
