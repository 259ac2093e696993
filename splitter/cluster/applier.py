"""The Applier is the only writer: reconfigs, server commands, playbook runs. Dry run is enforced here.

Every change is an `action` event (what, where, result, seconds, attempts) on the event bus, which the audit log
keeps; transient failures are retried with the shared helper (`retry` events carry the reason).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import AutoReconnect, ConnectionFailure, PyMongoError

from splitter.cluster.connect import Connector
from splitter.cluster.shutdown import request_shutdown
from splitter.errors import OperationalError, RetryableError
from splitter.events import EventBus, EventType
from splitter.hosts.ansible_adapter import AnsibleAdapter
from splitter.retry import Failure, classify, code_name, retrying

log = logging.getLogger("splitter.applier")


class CrashPoint:
    """Fault injection for crash-safety tests: SPLITTER_CRASH_AFTER="step-id:action text:N" makes this process
    SIGKILL itself right after the N-th completed action containing that text while that step runs."""

    def __init__(self, spec: str | None) -> None:
        self.step, self.text, count = [*spec.split(":", 2), "", "", "1"][:3] if spec else (None, None, "1")
        self.remaining = int(count or 1)

    @classmethod
    def from_env(cls) -> CrashPoint:
        return cls(os.environ.get("SPLITTER_CRASH_AFTER"))

    def after(self, step: str | None, what: str) -> None:
        if self.step is None or step != self.step or self.text not in what:
            return
        self.remaining -= 1
        if self.remaining == 0:
            log.warning("SPLITTER_CRASH_AFTER reached (%s: %s): killing this process", step, what)
            os.kill(os.getpid(), signal.SIGKILL)


def _as_retryable(exc: PyMongoError) -> Exception:
    if classify(exc) is Failure.TRANSIENT:
        return RetryableError(f"{code_name(exc)}: {exc}")
    return OperationalError(str(exc))


class ReportedAdapter:
    """The host adapter as steps reach it (`ctx.applier.adapter`): the read-only playbooks they run themselves
    (preflight's reachability check, a dbpath check) are `host.check` events, so the audit log and the bench
    see them too. Changes go through `Applier.playbook` instead (an `action`)."""

    def __init__(self, adapter: AnsibleAdapter, events: EventBus) -> None:
        self.inner = adapter
        self.events = events

    def run(self, playbook: str, hosts: Sequence[str], extravars: Mapping[str, Any] | None = None) -> Any:
        started = time.monotonic()
        where = ",".join(hosts)
        try:
            result = self.inner.run(playbook, hosts, extravars)
        except BaseException as exc:
            self.events.emit(EventType.HOST_CHECK, f"check {playbook} @ {where} failed: {exc}", level="debug",
                             playbook=playbook, hosts=list(hosts), result="error",
                             seconds=round(time.monotonic() - started, 3))
            raise
        self.events.emit(EventType.HOST_CHECK, f"check {playbook} @ {where}", level="debug", playbook=playbook,
                         hosts=list(hosts), result="ok", seconds=round(time.monotonic() - started, 3))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Applier:
    """Every change to a cluster or host goes through here, is reported as an event, and is skipped in dry run."""

    def __init__(self, connector: Connector, adapter: AnsibleAdapter, events: EventBus, *, dry_run: bool = False,
                 retries: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        self.connector = connector
        self.adapter = ReportedAdapter(adapter, events)
        self.events = events
        self.dry_run = dry_run
        self.retries = retries
        self.planned: list[str] = []
        self._sleep = sleep
        self._crash = CrashPoint.from_env()

    @property
    def current_step(self) -> str | None:
        return self.events.step

    def _do(self, what: str, where: str, fn: Callable[[], Any], **detail: Any) -> Any:
        if self.dry_run:
            self.planned.append(f"{what} @ {where}")
            return None
        started = time.monotonic()
        attempts = 0
        try:
            for attempt in retrying(what, events=self.events, where=where, attempts=self.retries, sleep=self._sleep):
                with attempt:
                    attempts += 1
                    try:
                        result = fn()
                    except PyMongoError as exc:
                        raise _as_retryable(exc) from exc
        except BaseException as exc:
            self.events.emit(EventType.ACTION, f"{what} @ {where} failed: {exc}", level="error", what=what,
                             where=where, result="error", error=f"{type(exc).__name__}: {exc}", attempts=attempts,
                             seconds=round(time.monotonic() - started, 3), **detail)
            raise
        self.events.emit(EventType.ACTION, f"{what} @ {where}", what=what, where=where, result="ok",
                         attempts=attempts, seconds=round(time.monotonic() - started, 3), **detail)
        self._crash.after(self.current_step, what)
        return result

    # -- database -----------------------------------------------------------------------------------
    def admin_command(self, client: MongoClient, where: str, command: Mapping[str, Any], what: str) -> Any:
        return self._do(what, where, lambda: client.admin.command(dict(command)),
                        command=next(iter(command)))

    def reconfig(self, client: MongoClient, where: str, new_config: dict[str, Any], why: str) -> Any:
        """replSetReconfig through the primary (safe reconfig: at most one voting change per call)."""
        return self._do(f"replSetReconfig: {why}", where,
                        lambda: client.admin.command("replSetReconfig", new_config, maxTimeMS=60_000),
                        version=new_config.get("version"))

    def set_default_write_concern(self, client: MongoClient, where: str, write_concern: dict[str, Any]) -> Any:
        return self._do("setDefaultRWConcern", where, lambda: client.admin.command(
            "setDefaultRWConcern", 1, defaultWriteConcern=write_concern, writeConcern={"w": "majority"}),
            write_concern=write_concern)

    def step_down(self, client: MongoClient, where: str, seconds: int = 60) -> None:
        def run() -> None:
            # The primary closes connections as it steps down: that is success.
            with contextlib.suppress(AutoReconnect, ConnectionFailure):
                client.admin.command("replSetStepDown", seconds, secondaryCatchUpPeriodSecs=10)

        self._do("replSetStepDown", where, run, seconds=seconds)

    def freeze(self, client: MongoClient, where: str, seconds: int) -> None:
        self._do("replSetFreeze", where, lambda: client.admin.command("replSetFreeze", seconds), seconds=seconds)

    def shutdown(self, host: str, timeout_secs: int = 10) -> None:
        """Clean shutdown via the server (short timeoutSecs); AutoReconnect means it happened."""
        self._do("shutdown", host, lambda: request_shutdown(host, timeout_secs, force=False,
                                                            client=self.connector.member(host)),
                 timeout_secs=timeout_secs)
        self.connector.forget(host)

    def write_replset_config(self, client: MongoClient, where: str, config_doc: dict[str, Any]) -> None:
        """On a standalone node: make the new set's config the only doc in local.system.replset."""
        def run() -> None:
            coll = client.local["system.replset"]
            coll.replace_one({"_id": config_doc["_id"]}, config_doc, upsert=True)
            coll.delete_many({"_id": {"$ne": config_doc["_id"]}})

        self._do("write local.system.replset", where, run, set=config_doc["_id"], version=config_doc["version"])

    def drop_connections(self, client: MongoClient, where: str, hosts: Sequence[str]) -> None:
        self._do("dropConnections", where, lambda: client.admin.command("dropConnections", hostAndPort=list(hosts)),
                 hosts=list(hosts))

    # -- hosts --------------------------------------------------------------------------------------
    def playbook(self, playbook: str, hosts: Sequence[str], extravars: Mapping[str, Any] | None = None) -> Any:
        where = ",".join(hosts)
        return self._do(f"playbook {playbook}", where, lambda: self.adapter.inner.run(playbook, hosts, extravars),
                        extravars=dict(extravars or {}))
