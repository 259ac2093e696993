"""One vocabulary for what a MongoDB error means, and one retry helper (tenacity) that reports every retry.

`classify` sorts any exception into a Failure: TRANSIENT (an election, a restart, a network blip: trying
again may succeed), HISTORY_LOST (a change stream's start left the oplog), AUTH, DUPLICATE_KEY, VALIDATION
(a document validator refused the write), or FATAL. The applier, the catch-up, the cleanup and verify all
decide with it, and all retry with `retrying`, which emits a `retry` event with the reason before each wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError, WTimeoutError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from splitter.errors import RetryableError
from splitter.events import EventBus, EventType


class Failure(str, Enum):
    TRANSIENT = "transient"
    HISTORY_LOST = "history-lost"
    AUTH = "auth"
    DUPLICATE_KEY = "duplicate-key"
    VALIDATION = "validation"
    FATAL = "fatal"


# Elections, shutdowns, restarts, network and write-concern timeouts, reconfigs still committing.
TRANSIENT_CODES = frozenset({
    6,      # HostUnreachable
    7,      # HostNotFound
    43,     # CursorNotFound (a stream's cursor died with its node)
    50,     # MaxTimeMSExpired
    64,     # WriteConcernFailed (wtimeout)
    89,     # NetworkTimeout
    91,     # ShutdownInProgress
    109,    # ConfigurationInProgress
    112,    # WriteConflict
    133,    # FailedToSatisfyReadPreference
    189,    # PrimarySteppedDown
    234,    # RetryChangeStream
    262,    # ExceededTimeLimit
    308,    # CurrentConfigNotCommittedYet
    9001,   # SocketException
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
})
TRANSIENT_LABELS = ("ResumableChangeStreamError", "RetryableWriteError", "TransientTransactionError")
HISTORY_LOST_CODES = frozenset({280, 286})  # ChangeStreamFatalError, ChangeStreamHistoryLost
AUTH_CODES = frozenset({13, 18})            # Unauthorized, AuthenticationFailed
DUPLICATE_KEY_CODES = frozenset({11000, 11001})
VALIDATION_CODES = frozenset({121})         # DocumentValidationFailure


def _by_code(code: int | None) -> Failure | None:
    if code in HISTORY_LOST_CODES:
        return Failure.HISTORY_LOST
    if code in AUTH_CODES:
        return Failure.AUTH
    if code in DUPLICATE_KEY_CODES:
        return Failure.DUPLICATE_KEY
    if code in VALIDATION_CODES:
        return Failure.VALIDATION
    if code in TRANSIENT_CODES:
        return Failure.TRANSIENT
    return None


def write_error_codes(exc: BulkWriteError) -> list[int]:
    details = exc.details or {}
    return [int(e.get("code", 0)) for e in (*details.get("writeErrors", ()), *details.get("writeConcernErrors", ()))]


def classify(exc: BaseException) -> Failure:
    """What `exc` means for whoever hit it."""
    if isinstance(exc, RetryableError):
        return Failure.TRANSIENT
    if isinstance(exc, BulkWriteError):
        kinds = {_by_code(code) for code in write_error_codes(exc)}
        for kind in (Failure.DUPLICATE_KEY, Failure.VALIDATION, Failure.AUTH):
            if kind in kinds:
                return kind
        return Failure.TRANSIENT if kinds == {Failure.TRANSIENT} else Failure.FATAL
    if isinstance(exc, WTimeoutError | ConnectionFailure):  # AutoReconnect, NotPrimaryError, NetworkTimeout, ...
        return Failure.TRANSIENT
    if isinstance(exc, OperationFailure):
        kind = _by_code(exc.code)
        if kind is not None:
            return kind
        if any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
            return Failure.TRANSIENT
        return Failure.FATAL
    if isinstance(exc, PyMongoError) and any(exc.has_error_label(label) for label in TRANSIENT_LABELS):
        return Failure.TRANSIENT
    return Failure.FATAL


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Failure.TRANSIENT


def code_name(exc: BaseException) -> str:
    """'NotWritablePrimary (10107)', or the exception's type name."""
    if isinstance(exc, OperationFailure) and exc.code is not None:
        name = (exc.details or {}).get("codeName")
        return f"{name} ({exc.code})" if name else f"code {exc.code}"
    return type(exc).__name__


def retrying(what: str, *, events: EventBus | None = None, where: str | None = None, attempts: int = 6,
             wait_min: float = 0.5, wait_max: float = 8.0, retry_on: Callable[[BaseException], bool] = is_transient,
             stop: Callable[[RetryCallState], bool] | None = None,
             on_retry: Callable[[RetryCallState], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """A tenacity Retrying for `what`: retries what `retry_on` accepts (transient errors by default) with
    exponential waits, at most `attempts` times (or as `stop` says), and emits a `retry` event with the reason
    before each wait. The last error is raised as it was."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if events is not None:
            events.emit(EventType.RETRY, f"retrying {what}{f' @ {where}' if where else ''} in {wait:.1f}s "
                        f"(attempt {state.attempt_number}): {code_name(exc) if exc else ''}: {exc}",
                        level="warning", what=what, where=where, attempt=state.attempt_number,
                        reason=str(exc), error=code_name(exc) if exc else None, wait=round(wait, 3))
        if on_retry is not None:
            on_retry(state)

    return Retrying(retry=retry_if_exception(retry_on), stop=stop or stop_after_attempt(attempts),
                    wait=wait_exponential(multiplier=wait_min, min=wait_min, max=wait_max),
                    before_sleep=before_sleep, reraise=True, sleep=sleep)


def first_error(errors: Iterable[dict[str, Any]]) -> str:
    """The first write error of a bulk result as 'code: message'."""
    for error in errors:
        return f"{error.get('code')}: {error.get('errmsg', '')}"
    return ""
