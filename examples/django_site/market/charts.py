"""The ticker page's candlestick chart, drawn from the stored tables by the pipeline's own
``quote_pipeline.charts`` (a SQLAlchemy engine on the same database; no API call)."""

from __future__ import annotations

import threading

from django.conf import settings
from sqlalchemy.engine import Engine

from quote_pipeline.charts import chart_title, daily_chart_frame, render_candlestick
from quote_pipeline.storage import create_db_engine

CHART_DAYS = 120
CHART_WIDTH, CHART_HEIGHT = 880, 440

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per database URL and process; never migrates (``upgrade=False``)."""
    with _engines_lock:
        if url not in _engines:
            _engines[url] = create_db_engine(url, upgrade=False)
        return _engines[url]


def dispose_engines() -> None:
    """Close and forget every cached engine (tests switching databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def daily_chart_png(ticker: str) -> bytes:
    """The last ``CHART_DAYS`` sessions of ``ticker`` (adjusted candles, volume, SMA 20/50)
    as a PNG; :class:`quote_pipeline.charts.ChartError` when nothing is stored."""
    frame = daily_chart_frame(
        engine_for(settings.QUOTE_PIPELINE_DATABASE_URL), ticker, days=CHART_DAYS
    )
    title = chart_title(ticker, frame)
    return render_candlestick(frame, title=title, width_px=CHART_WIDTH, height_px=CHART_HEIGHT)
