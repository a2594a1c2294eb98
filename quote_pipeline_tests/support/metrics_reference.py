"""The issue's definitions of daily_metrics in plain pandas, written apart from
quote_pipeline.analytics (rolling and ewm over the whole history, no seeds, no windows of
numpy): what the stored metrics are compared with."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from quote_pipeline.analytics import METRIC_COLUMNS
from quote_pipeline.storage.adjusted_prices import read_adjusted_prices
from quote_pipeline.storage.metrics import read_daily_metrics


def expected_metrics(engine: Engine, ticker: str) -> pd.DataFrame:
    """Every metric of ``ticker``, from its stored adjusted rows."""
    rows = read_adjusted_prices(engine, [ticker])
    close = pd.Series([float(r.adj_close) for r in rows])
    high = pd.Series([float(r.adj_high) for r in rows])
    low = pd.Series([float(r.adj_low) for r in rows])
    log_return = np.log(close / close.shift(1))
    ema_12 = close.ewm(span=12, adjust=False).mean()
    ema_26 = close.ewm(span=26, adjust=False).mean()
    delta = close.diff()
    avg_gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    avg_loss = (-delta).clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    rsi = 100 - 100 / (1 + avg_gain / avg_loss)
    rsi[delta.index < 14] = np.nan
    return pd.DataFrame(
        {
            "date": [r.day for r in rows],
            "return_1d": close / close.shift(1) - 1,
            "log_return_1d": log_return,
            "sma_20": close.rolling(20).mean(),
            "sma_50": close.rolling(50).mean(),
            "sma_200": close.rolling(200).mean(),
            "ema_12": ema_12,
            "ema_26": ema_26,
            "macd": ema_12 - ema_26,
            "macd_signal": (ema_12 - ema_26).ewm(span=9, adjust=False).mean(),
            "volatility_20": log_return.rolling(20).std(ddof=1) * math.sqrt(252),
            "rsi_14": rsi,
            "drawdown": close / close.cummax() - 1,
            "high_52w": high.rolling(252, min_periods=1).max(),
            "low_52w": low.rolling(252, min_periods=1).min(),
        }
    )


def assert_metrics_match_pandas(engine: Engine, ticker: str) -> pd.DataFrame:
    """The stored metrics of ``ticker`` equal the reference (to float rounding); returns them
    indexed by date."""
    got = read_daily_metrics(engine, [ticker]).drop(columns="ticker")
    want = expected_metrics(engine, ticker)
    assert len(got) > 0, f"no metrics stored for {ticker}"
    assert list(got["date"]) == list(want["date"])
    for column in METRIC_COLUMNS:
        np.testing.assert_allclose(
            got[column].to_numpy(),
            want[column].to_numpy(),
            rtol=1e-9,
            atol=1e-12,
            err_msg=f"{ticker}.{column}",
        )
    return got.set_index("date")
