"""Price history: daily partitions, single-run backfills, 5-minute bars."""
