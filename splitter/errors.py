"""One exception hierarchy. The type says what the caller may do: retry, stop with exit 1, or exit 2."""

from __future__ import annotations


class SplitterError(Exception):
    """Base of every error splitter raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class BadInput(SplitterError):
    """The operator's input is wrong (config, inventory, topology mismatch). Nothing was changed."""

    exit_code = 2


class OperationalError(SplitterError):
    """Something failed while acting on the cluster or hosts. Fatal: stop, report, let the operator resume."""

    exit_code = 1


class HalvesDiffer(OperationalError):
    """`verify` read everything and found differences (exit 3), as opposed to could not check (exit 1)."""

    exit_code = 3


class RetryableError(OperationalError):
    """A transient condition (election in progress, node restarting). Bounded retries may clear it."""


class HostActionFailed(OperationalError):
    """A playbook run on one or more hosts failed."""


class StepFailed(OperationalError):
    """A step's precheck, apply or verify failed; carries the step id."""

    def __init__(self, step_id: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"step {step_id}: {message}", hint=hint)
        self.step_id = step_id


class LockHeld(OperationalError):
    """Another splitter process holds the state directory."""


class Interrupted(SplitterError):
    """The operator asked to stop (Ctrl-C, --until, --step answered no); the checkpoint is consistent."""

    exit_code = 0
