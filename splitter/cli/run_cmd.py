"""plan / run / confirm / status / rollback (filled in by the engine)."""

COMMANDS: list = []
