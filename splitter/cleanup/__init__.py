"""`splitter cleanup`: throttled, resumable deletion of the half a set no longer serves after the split.

Modules: throttle (pure decisions), lag (replication lag of secondaries), position (resume files),
control (pause flag, signals, lock), worker (the batches), report, progress, schedule (nightly units).
"""
