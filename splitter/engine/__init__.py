"""The state machine: checkpoint, lock, audit log, runner, gates and plan."""
