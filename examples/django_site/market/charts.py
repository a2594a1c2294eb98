"""The ticker page's candlestick chart, drawn from the stored tables by the pipeline's own
``quote_pipeline.charts`` (on the site's read-only SQLAlchemy engine; no API call)."""

from __future__ import annotations

from market.engine import site_engine
from quote_pipeline.charts import chart_title, daily_chart_frame, render_candlestick

CHART_DAYS = 120
CHART_WIDTH, CHART_HEIGHT = 880, 440


def daily_chart_png(ticker: str) -> bytes:
    """The last ``CHART_DAYS`` sessions of ``ticker`` (adjusted candles, volume, SMA 20/50)
    as a PNG; :class:`quote_pipeline.charts.ChartError` when nothing is stored, SQLAlchemy's
    errors when the database cannot be read."""
    frame = daily_chart_frame(site_engine(), ticker, days=CHART_DAYS)
    title = chart_title(ticker, frame)
    return render_candlestick(frame, title=title, width_px=CHART_WIDTH, height_px=CHART_HEIGHT)
