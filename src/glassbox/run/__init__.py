"""A run's bookkeeping: its directory (layout), snapshots, resuming, the lock, the W&B and JSONL sinks,
and the ranks of a DDP job."""
