"""Price history: daily bars in daily partitions, 5-minute bars, their checks and schedules."""

from quote_pipeline.defs.history.assets import daily_partitions, daily_prices, intraday_bars
from quote_pipeline.defs.history.jobs import daily_prices_job, intraday_bars_job
from quote_pipeline.defs.history.schedules import build_history_schedules

history_assets = [daily_prices, intraday_bars]
history_jobs = [daily_prices_job, intraday_bars_job]

__all__ = [
    "build_history_schedules",
    "daily_partitions",
    "daily_prices",
    "history_assets",
    "history_jobs",
    "intraday_bars",
]
