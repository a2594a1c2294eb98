"""Price history: daily bars in daily partitions, 5-minute bars, their checks and schedules."""
