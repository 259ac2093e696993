"""Builds pymongo clients; credentials come from env vars or files named in the config, never from argv."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from splitter.config import Credentials
from splitter.errors import BadInput


@dataclass(frozen=True)
class Secret:
    """A value that never prints itself."""

    value: str

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def _read(env: str | None, file: str | None, what: str) -> str | None:
    if env:
        if env not in os.environ:
            raise BadInput(f"credentials: environment variable {env} (the {what}) is not set",
                           hint=f"export {env}=... or set credentials.{what}_file")
        return os.environ[env]
    if file:
        try:
            return Path(file).expanduser().read_text().strip()
        except OSError as exc:
            raise BadInput(f"credentials: cannot read {what} file {file}: {exc.strerror}") from exc
    return None


class Connector:
    """Hands out cached clients for single members (direct) and for whole sets."""

    def __init__(self, credentials: Credentials | None = None, *, timeout_ms: int = 5000) -> None:
        creds = credentials or Credentials()
        self._options: dict[str, Any] = {"serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms}
        user = _read(creds.username_env, creds.username_file, "username")
        password = _read(creds.password_env, creds.password_file, "password")
        if user and password:
            self._password = Secret(password)
            self._options.update(username=user, authSource=creds.auth_source)
        elif user or password:
            raise BadInput("credentials: give both a username and a password source, or neither")
        else:
            self._password = None
        if creds.tls_ca_file:
            self._options.update(tls=True, tlsCAFile=creds.tls_ca_file)
        self._clients: dict[tuple, MongoClient] = {}

    def _client(self, key: tuple, **kwargs: Any) -> MongoClient:
        if key not in self._clients:
            options = {**self._options, **kwargs}
            if self._password is not None:
                options["password"] = self._password.value
            self._clients[key] = MongoClient(**options)
        return self._clients[key]

    def member(self, host: str) -> MongoClient:
        """A direct connection to one mongod (any state, including standalone)."""
        return self._client(("member", host), host=host, directConnection=True)

    def replica_set(self, name: str, hosts: list[str]) -> MongoClient:
        """A replica-set connection (primary reads/writes, secondary reads by read preference)."""
        return self._client(("set", name, tuple(hosts)), host=list(hosts), replicaSet=name,
                            retryWrites=True)

    def forget(self, host: str) -> None:
        """Drop the cached direct client (after a restart on another port or mode)."""
        client = self._clients.pop(("member", host), None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
