"""splitter: split one MongoDB replica set into two, without downtime and without losing a write."""

__version__ = "0.1.0"
