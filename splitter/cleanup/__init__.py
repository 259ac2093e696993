"""`splitter cleanup`: throttled, resumable deletion of the half a set no longer serves, after `finalize`.

Modules: options (the parsed command line), worker (one set's walk), batches (chunks and the interlock by half),
pipeline (chunks in flight), orphans (--remove-orphans), throttle and budget (pure decisions), observer and probe
(what the decisions see), control (pause flag, signals, lock), tally and report (counts), progress (the bar and
plain lines, from events), schedule (nightly units). The session that wires them is splitter/engine/cleanup_session.
"""
