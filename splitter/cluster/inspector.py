"""The Inspector only reads: replica-set config and status, oplog ends, server facts. It never writes."""

from __future__ import annotations

import socket
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from splitter.cluster.connect import Connector
from splitter.cluster.snapshots import MemberStatus, OplogEntry, ReplSetConfig, ReplSetStatus
from splitter.errors import BadInput, RetryableError

AUTH_FAILED = 18


def raise_if_auth_failure(host: str, exc: OperationFailure) -> None:
    if exc.code == AUTH_FAILED:
        raise BadInput(f"{host} rejected the credentials: {exc.details.get('errmsg') if exc.details else exc}",
                       hint="check the username/password sources under `credentials:` in split.yaml")


class Inspector:
    """Reads cluster state through a Connector; every method returns an immutable snapshot."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def _admin(self, host: str, command: str | dict, **kwargs: Any) -> dict[str, Any]:
        try:
            return self.connector.member(host).admin.command(command, **kwargs)
        except OperationFailure as exc:
            raise_if_auth_failure(host, exc)
            raise RetryableError(f"{host}: {command if isinstance(command, str) else next(iter(command))}"
                                 f" failed: {exc}") from exc
        except PyMongoError as exc:
            raise RetryableError(f"{host}: {command if isinstance(command, str) else next(iter(command))}"
                                 f" failed: {exc}") from exc

    @staticmethod
    def listening(host: str) -> bool:
        """Something accepts TCP connections at host:port (a refused connect answers at once)."""
        name, _, port = host.rpartition(":")
        try:
            with socket.create_connection((name.strip("[]"), int(port)), timeout=2):
                return True
        except OSError:
            return False

    def reachable(self, host: str) -> bool:
        """A mongod answers at host; checks the port first so a stopped node costs no server-selection wait."""
        if not self.listening(host):
            return False
        try:
            self.connector.member(host).admin.command("ping")
            return True
        except OperationFailure as exc:
            raise_if_auth_failure(host, exc)
            return True
        except PyMongoError:
            return False

    def hello(self, host: str) -> dict[str, Any]:
        return self._admin(host, "hello")

    def config(self, host: str) -> ReplSetConfig:
        return ReplSetConfig.from_doc(self._admin(host, "replSetGetConfig")["config"])

    def status(self, host: str) -> ReplSetStatus:
        doc = self._admin(host, "replSetGetStatus")
        members = tuple(
            MemberStatus(host=m["name"], state=m["stateStr"], health=bool(m.get("health", 0)),
                         optime=(m.get("optime") or {}).get("ts"), is_self=bool(m.get("self", False)))
            for m in doc["members"]
        )
        return ReplSetStatus(name=doc["set"], members=members)

    def my_state(self, host: str) -> str:
        """'PRIMARY', 'SECONDARY', 'ARBITER', 'STANDALONE', 'DOWN', ... as seen by the node itself."""
        try:
            hello = self.connector.member(host).admin.command("hello")
        except PyMongoError:
            return "DOWN"
        if hello.get("isWritablePrimary") and hello.get("setName"):
            return "PRIMARY"
        if hello.get("secondary"):
            return "SECONDARY"
        if hello.get("arbiterOnly"):
            return "ARBITER"
        if not hello.get("setName"):
            return "STANDALONE" if "isreplicaset" not in hello else "REMOVED/UNINITIALIZED"
        return "OTHER"

    def stored_config(self, client: MongoClient) -> list[dict[str, Any]]:
        """Every doc of local.system.replset on a (standalone) node."""
        return list(client.local["system.replset"].find())

    def last_oplog_entry(self, client: MongoClient) -> OplogEntry | None:
        doc = client.local["oplog.rs"].find_one({}, sort=[("$natural", -1)])
        return OplogEntry(ts=doc["ts"], term=doc.get("t"), wall=doc.get("wall")) if doc else None

    def oplog_entry_at(self, client: MongoClient, ts: Any) -> dict[str, Any] | None:
        return client.local["oplog.rs"].find_one({"ts": ts})

    def oplog_window_seconds(self, host: str) -> float:
        oplog = self.connector.member(host).local["oplog.rs"]
        first = oplog.find_one({}, sort=[("$natural", 1)])
        last = oplog.find_one({}, sort=[("$natural", -1)])
        return float(last["ts"].time - first["ts"].time) if first and last else 0.0

    def default_rw_concern(self, host: str) -> dict[str, Any]:
        return self._admin(host, "getDefaultRWConcern")

    def server_facts(self, host: str) -> dict[str, Any]:
        """Version, FCV, free space on the dbpath's filesystem, bytes of data on disk (oplog included)."""
        client = self.connector.member(host)
        build = client.admin.command("buildInfo")
        try:
            fcv = client.admin.command("getParameter", 1, featureCompatibilityVersion=1)
            fcv_version = fcv["featureCompatibilityVersion"]["version"]
        except OperationFailure:
            fcv_version = None
        stats = client.admin.command("dbStats")
        total = stats.get("fsTotalSize") or 0
        used = stats.get("fsUsedSize") or 0
        data = client.admin.command("listDatabases", nameOnly=False).get("totalSize", 0)
        return {"version": build["version"], "fcv": fcv_version,
                "free_fraction": (1 - used / total) if total else None,
                "free_bytes": (total - used) if total else None, "data_bytes": int(data)}

    def list_namespaces(self, host_client: MongoClient) -> list[tuple[str, str]]:
        out = []
        for db in host_client.list_database_names():
            if db in ("admin", "local", "config"):
                continue
            for coll in host_client[db].list_collection_names(filter={"type": "collection"}):
                out.append((db, coll))
        return sorted(out)
