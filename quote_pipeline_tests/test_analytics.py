"""The metric conventions of quote_pipeline.analytics on series small enough to check by
hand: the RSI's edge cases, the sessions each statistic waits for, a seed required to resume,
and a resumed computation equal to a full one at every start."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quote_pipeline.analytics import (
    LOOKBACK_SESSIONS,
    METRIC_COLUMNS,
    STATE_COLUMNS,
    MetricsSeed,
    metrics_arrays,
)


def computed(close: list[float], **kwargs: object) -> dict[str, np.ndarray]:
    values = np.array(close, dtype="float64")
    return metrics_arrays(values, values * 1.01, values * 0.99, **kwargs)  # type: ignore[arg-type]


def test_the_columns_come_in_the_stored_order() -> None:
    assert list(computed([10.0, 11.0])) == [*METRIC_COLUMNS, *STATE_COLUMNS]


def test_rsi_is_100_when_nothing_was_lost_and_50_when_nothing_moved() -> None:
    rising = computed([float(10 + i) for i in range(20)])
    flat = computed([10.0] * 20)
    assert np.isnan(rising["rsi_14"][:14]).all()
    assert (rising["rsi_14"][14:] == 100.0).all()
    assert (flat["rsi_14"][14:] == 50.0).all()
    assert (flat["volatility_20"][np.isfinite(flat["volatility_20"])] == 0.0).all()


def test_each_statistic_waits_for_its_window() -> None:
    close = [100.0 + math.sin(i) for i in range(260)]
    metrics = computed(close)
    first_defined = {
        name: int(np.argmax(np.isfinite(metrics[name])))
        for name in ("return_1d", "sma_20", "sma_50", "sma_200", "volatility_20", "rsi_14")
    }
    assert first_defined == {
        "return_1d": 1,
        "sma_20": 19,
        "sma_50": 49,
        "sma_200": 199,
        "volatility_20": 20,  # 20 returns need 21 sessions
        "rsi_14": 14,
    }
    # The 52-week range and the EMAs start at once (over what is stored so far).
    assert metrics["high_52w"][0] == pytest.approx(close[0] * 1.01)
    assert metrics["ema_12"][0] == close[0] and metrics["macd"][0] == 0.0
    assert metrics["sma_20"][19] == pytest.approx(sum(close[:20]) / 20)
    assert (metrics["drawdown"] <= 0).all()


def test_resuming_needs_the_previous_session_s_metrics() -> None:
    with pytest.raises(ValueError, match="seed"):
        computed([10.0, 11.0, 12.0], start=2)


def test_a_resumed_computation_equals_the_full_one_at_every_start() -> None:
    rng = np.random.default_rng(11)
    close = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 320))))
    close[40:46] = [close[39]] * 6  # a flat stretch: gains and losses of 0
    full = computed(close)
    for start in range(1, len(close)):
        seed = MetricsSeed(*(float(full[name][start - 1]) for name in MetricsSeed.__slots__))
        first = max(0, start - LOOKBACK_SESSIONS)
        resumed = computed(close[first:], start=start - first, seed=seed)
        for name, values in resumed.items():
            np.testing.assert_array_equal(values, full[name][start:], err_msg=f"{name}@{start}")
