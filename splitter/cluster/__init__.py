"""Database side: connections, read-only inspection, the single writer."""
