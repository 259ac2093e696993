"""`splitter grow`: add new data nodes to a replica set by initial sync, as resumable verified steps."""
