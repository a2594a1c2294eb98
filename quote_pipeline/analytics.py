"""Daily research metrics of one ticker's adjusted history, with pandas and numpy.

No Dagster, no database: arrays of sessions in, arrays of metrics out. The statistics are
floats (float64), not prices: they are stored as double precision and documented as such.

A computation can start at any session and continue the stored one exactly:

- windowed statistics (moving averages, volatility, 52-week range) are computed window by
  window (numpy sliding windows), not as running sums, so a window's value depends only on
  the sessions in it — the ``LOOKBACK_SESSIONS`` before the start are all it needs;
- recursive ones (EMAs, MACD signal, Wilder's averages, the running peak) continue from the
  previous session's stored values (``MetricsSeed``): pandas ``ewm(adjust=False)`` keeps no
  other state, so seeding it with the last value gives the same numbers as a full run.

So appending a day costs a window, not the history, and equals recomputing everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

SMA_WINDOWS = (20, 50, 200)
VOLATILITY_WINDOW = 20
RSI_PERIOD = 14
RANGE_WINDOW = 252  # sessions in a year: the 52-week high and low
TRADING_DAYS_PER_YEAR = 252
# The longest window: the sessions before a start that a resumed computation reads.
LOOKBACK_SESSIONS = RANGE_WINDOW

METRIC_COLUMNS = (
    "return_1d",
    "log_return_1d",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "volatility_20",
    "rsi_14",
    "drawdown",
    "high_52w",
    "low_52w",
)
# The recursions' state, stored on every row so that any session can be resumed from.
STATE_COLUMNS = ("rsi_avg_gain", "rsi_avg_loss", "peak_close")
# Stored with each ticker's metrics: a new version (a changed definition, window or
# convention) recomputes every stored row instead of mixing definitions in one history.
METRICS_VERSION = 1


@dataclass(frozen=True, slots=True)
class MetricsSeed:
    """The stored metrics of the session before a resumed computation (NaN where NULL)."""

    ema_12: float
    ema_26: float
    macd_signal: float
    rsi_avg_gain: float
    rsi_avg_loss: float
    peak_close: float

    @classmethod
    def from_row(cls, row: Any) -> MetricsSeed:
        """From a ``daily_metrics`` row (NULL read as NaN)."""

        def value(name: str) -> float:
            v = getattr(row, name)
            return math.nan if v is None else float(v)

        return cls(*(value(name) for name in cls.__slots__))


def _windowed(values: np.ndarray, window: int, reduce: str, **kwargs: Any) -> np.ndarray:
    """``reduce`` (mean, std, max, min) of each full window ending at each position; NaN
    where fewer than ``window`` values precede, or where the window holds a NaN."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        windows = sliding_window_view(values, window)
        out[window - 1 :] = getattr(windows, reduce)(axis=1, **kwargs)
    return out


def _range(values: np.ndarray, window: int, reduce: str) -> np.ndarray:
    """max/min over the last ``window`` values, or all of them while fewer are there."""
    accumulate = np.maximum.accumulate if reduce == "max" else np.minimum.accumulate
    out = np.empty(len(values))
    out[: window - 1] = accumulate(values[: window - 1])
    if len(values) >= window:
        out[window - 1 :] = getattr(sliding_window_view(values, window), reduce)(axis=1)
    return out


def _ewm(values: np.ndarray, *, seed: float | None, **params: float) -> np.ndarray:
    """pandas ``ewm(adjust=False).mean()``; continued from ``seed`` (the previous session's
    value) when given — the recursion keeps no other state, so this equals a full run."""
    if seed is None:
        return pd.Series(values).ewm(adjust=False, **params).mean().to_numpy()
    seeded = np.concatenate(([seed], values))
    return pd.Series(seeded).ewm(adjust=False, **params).mean().to_numpy()[1:]


def _rsi(avg_gain: np.ndarray, avg_loss: np.ndarray) -> np.ndarray:
    """100 - 100 / (1 + RS); 100 when nothing was lost, 50 when nothing moved at all."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    rsi = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, rsi)
    return np.where((avg_loss == 0) & (avg_gain == 0), 50.0, rsi)


def metrics_arrays(
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    *,
    start: int = 0,
    seed: MetricsSeed | None = None,
) -> dict[str, np.ndarray]:
    """Metrics of the sessions ``[start:]`` of one ticker's adjusted closes, highs and lows
    (float64, in date order): ``METRIC_COLUMNS`` then ``STATE_COLUMNS``, each of length
    ``len(close) - start``. Arrays, not DataFrames: the storage layer calls this for hundreds
    of tickers a refresh, most with one new session.

    Sessions before ``start`` are context only: the whole history before it, or at least its
    last ``LOOKBACK_SESSIONS`` (no window is longer, and "NULL until n sessions" is then long
    settled). ``seed`` is the stored metrics of session ``start - 1``, required when
    ``start > 0``.
    """
    if start and seed is None:
        raise ValueError("a computation that starts after the first session needs its seed")
    # Within the frame, position i has i sessions before it (or LOOKBACK_SESSIONS and more,
    # beyond every threshold below).
    position = np.arange(start, len(close))

    previous = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((close > 0) & (previous > 0), close / previous, np.nan)
        log_return = np.log(ratio)
    # Windows end at the sessions written: the context before `start` only feeds them.
    sma = {w: _windowed(close, w, "mean")[start:] for w in SMA_WINDOWS}
    # The first session has no return: a 20-return window needs 21 sessions.
    volatility = _windowed(log_return, VOLATILITY_WINDOW, "std", ddof=1)[start:] * math.sqrt(
        TRADING_DAYS_PER_YEAR
    )

    # Recursive metrics from `start` on, continuing the seed.
    new_close = close[start:]
    ema_12 = _ewm(new_close, seed=seed.ema_12 if seed else None, span=12)
    ema_26 = _ewm(new_close, seed=seed.ema_26 if seed else None, span=26)
    macd = ema_12 - ema_26
    delta = new_close - previous[start:]
    gain = np.where(np.isnan(delta), np.nan, np.clip(delta, 0.0, None))
    loss = np.where(np.isnan(delta), np.nan, np.clip(-delta, 0.0, None))
    avg_gain = _ewm(gain, seed=seed.rsi_avg_gain if seed else None, alpha=1 / RSI_PERIOD)
    avg_loss = _ewm(loss, seed=seed.rsi_avg_loss if seed else None, alpha=1 / RSI_PERIOD)
    running_peak = np.maximum.accumulate(new_close) if len(new_close) else new_close
    peak = np.fmax(running_peak, seed.peak_close) if seed else running_peak
    rsi = _rsi(avg_gain, avg_loss)
    return {
        "return_1d": (ratio - 1.0)[start:],
        "log_return_1d": log_return[start:],
        **{f"sma_{w}": values for w, values in sma.items()},
        "ema_12": ema_12,
        "ema_26": ema_26,
        "macd": macd,
        "macd_signal": _ewm(macd, seed=seed.macd_signal if seed else None, span=9),
        "volatility_20": volatility,
        "rsi_14": np.where(position >= RSI_PERIOD, rsi, np.nan),
        "drawdown": new_close / peak - 1.0,
        "high_52w": _range(high, RANGE_WINDOW, "max")[start:],
        "low_52w": _range(low, RANGE_WINDOW, "min")[start:],
        "rsi_avg_gain": avg_gain,
        "rsi_avg_loss": avg_loss,
        "peak_close": peak,
    }


__all__ = [
    "LOOKBACK_SESSIONS",
    "METRICS_VERSION",
    "METRIC_COLUMNS",
    "STATE_COLUMNS",
    "MetricsSeed",
    "metrics_arrays",
]
