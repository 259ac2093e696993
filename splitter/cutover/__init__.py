"""The cutover: fence, drain, switch, verify at a snapshot, a way back until finalize (see protocol.py)."""
