"""OHLCV candlestick charts as small PNGs, from the stored tables (no Dagster, no API call).

Used by ``quote-pipeline chart`` and by a Dagster asset that embeds the PNGs in its
materializations; both read only what is stored. Matplotlib draws on its Agg canvas through a
``Figure`` of its own (never pyplot), so nothing global is touched and no GUI or browser is
involved; it is imported inside :func:`render_candlestick` only, so importing this module stays
cheap for the CLI and the code location.

Prices are exact decimals in the database; the chart frames carry them as floats, which is
what plotting needs (nothing computed here is written back).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.models import InvalidSymbolError, normalize_symbol
from quote_pipeline.storage.repository import transaction
from quote_pipeline.storage.schema import daily_metrics, daily_prices_adjusted, intraday_bars

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DAILY_SMA_COLUMNS",
    "INTRADAY_SMA_WINDOW",
    "OHLCV_COLUMNS",
    "ChartError",
    "chart_title",
    "daily_chart_frame",
    "intraday_chart_frame",
    "render_candlestick",
]

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
DAILY_SMA_COLUMNS = ("sma_20", "sma_50")
# Intraday SMAs are over 5-minute bars of the one session charted, not over sessions.
INTRADAY_SMA_WINDOW = 20

UP_COLOR = "#1a9850"  # close >= open
DOWN_COLOR = "#d73027"  # close < open
UP_VOLUME_COLOR = "#8cc9a0"  # lighter, so the volume panel does not compete with the candles
DOWN_VOLUME_COLOR = "#eb9a90"
SMA_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b")
DPI = 100  # modest: figsize = px / DPI, so the PNG is exactly width_px x height_px
PALETTE_COLORS = 64  # palette PNG: a third of the RGB size, candle colours kept exact
MAX_TICKS = 7
EN_DASH = " \N{EN DASH} "  # between the first and last date of a title


class ChartError(Exception):
    """One-line, user-facing (no data for the ticker, etc.)."""


# --- frames --------------------------------------------------------------------------------


def _ticker(raw: str) -> str:
    try:
        return normalize_symbol(raw.strip())
    except InvalidSymbolError as exc:
        raise ChartError(str(exc)) from None


def daily_chart_frame(bind: Engine | Connection, ticker: str, *, days: int = 120) -> pd.DataFrame:
    """The last ``days`` stored sessions of ``ticker`` from daily_prices_adjusted, oldest first.

    Index ``date`` (``datetime.date``); float64 columns open, high, low, close, volume (the
    adj_* values) and sma_20, sma_50 from daily_metrics (NaN where no metrics row or value).
    Adjusted prices, so that splits and dividends do not show as gaps in the candles.
    """
    symbol = _ticker(ticker)
    if days < 1:
        raise ChartError(f"days must be at least 1, not {days}")
    adjusted, metrics = daily_prices_adjusted, daily_metrics
    statement = (
        sa.select(
            adjusted.c.date,
            adjusted.c.adj_open.label("open"),
            adjusted.c.adj_high.label("high"),
            adjusted.c.adj_low.label("low"),
            adjusted.c.adj_close.label("close"),
            adjusted.c.adj_volume.label("volume"),
            *(metrics.c[name] for name in DAILY_SMA_COLUMNS),
        )
        .select_from(
            adjusted.outerjoin(
                metrics,
                sa.and_(metrics.c.ticker == adjusted.c.ticker, metrics.c.date == adjusted.c.date),
            )
        )
        .where(adjusted.c.ticker == symbol)
        .order_by(adjusted.c.date.desc())
        .limit(days)
    )
    with transaction(bind) as conn:
        rows = conn.execute(statement).all()
    if not rows:
        raise ChartError(
            f"no adjusted daily prices stored for {symbol}: materialize daily_prices "
            "(and let daily_prices_adjusted follow) first"
        )
    rows.reverse()
    columns = ["date", *OHLCV_COLUMNS, *DAILY_SMA_COLUMNS]
    frame = pd.DataFrame.from_records([tuple(row) for row in rows], columns=columns)
    return _as_float(frame.set_index("date"))


def intraday_chart_frame(
    bind: Engine | Connection, ticker: str, *, day: date | None = None
) -> pd.DataFrame:
    """The stored 5-minute bars of one New York session of ``ticker``, in time order.

    ``day`` is a New York date; by default the latest one with bars. Index ``bar_start``
    (tz-aware UTC); float64 open, high, low, close, volume as traded, and ``sma_20``: the mean
    close of the last 20 *5-minute bars* of that session (NaN for its first 19 bars), not the
    daily chart's 20-session average.
    """
    symbol = _ticker(ticker)
    bars = intraday_bars
    with transaction(bind) as conn:
        if day is None:
            latest = conn.scalar(
                sa.select(sa.func.max(bars.c.bar_start)).where(bars.c.ticker == symbol)
            )
            if latest is None:
                raise ChartError(
                    f"no intraday bars stored for {symbol}: materialize intraday_bars first"
                )
            day = _as_utc(latest).astimezone(NEW_YORK).date()
        # The New York day's bounds in UTC: 23 or 25 hours on DST change days.
        start = datetime.combine(day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK).astimezone(UTC)
        rows = conn.execute(
            sa.select(
                bars.c.bar_start, bars.c.open, bars.c.high, bars.c.low, bars.c.close, bars.c.volume
            )
            .where(bars.c.ticker == symbol, bars.c.bar_start >= start, bars.c.bar_start < end)
            .order_by(bars.c.bar_start)
        ).all()
    if not rows:
        raise ChartError(
            f"no intraday bars stored for {symbol} on {day.isoformat()} (New York): "
            "materialize intraday_bars first"
        )
    frame = pd.DataFrame.from_records(
        [(_as_utc(row[0]), *row[1:]) for row in rows], columns=["bar_start", *OHLCV_COLUMNS]
    )
    frame["bar_start"] = pd.DatetimeIndex(frame["bar_start"]).tz_convert(UTC)
    frame = _as_float(frame.set_index("bar_start"))
    sma = f"sma_{INTRADAY_SMA_WINDOW}"
    frame[sma] = frame["close"].rolling(INTRADAY_SMA_WINDOW, min_periods=INTRADAY_SMA_WINDOW).mean()
    return frame


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Exact decimals (and NULLs) to float64: the precision a plot has use for."""
    return frame.astype({column: "float64" for column in frame.columns})


# --- titles --------------------------------------------------------------------------------


def _is_intraday(index: pd.Index) -> bool:
    return isinstance(index, pd.DatetimeIndex) and index.tz is not None


def _new_york_times(index: pd.Index) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(index).tz_convert(NEW_YORK)


def _session_dates(index: pd.Index) -> list[date]:
    return [pd.Timestamp(value).date() for value in index]


def chart_title(ticker: str, frame: pd.DataFrame, *, intraday: bool = False) -> str:
    """``AAPL · daily, split- and dividend-adjusted · 2026-06-01`` en dash ``2026-11-27``, or
    for intraday ``AAPL · 5-minute bars, as traded · 2026-11-27 (New York time)``."""
    if frame.empty:
        raise ChartError(f"nothing to chart for {ticker}: no rows")
    symbol = ticker.strip().upper()
    if intraday:
        days = sorted({t.date() for t in _new_york_times(frame.index)})
        span = days[0].isoformat() if len(days) == 1 else f"{days[0]}{EN_DASH}{days[-1]}"
        return f"{symbol} · 5-minute bars, as traded · {span} (New York time)"
    dates = _session_dates(frame.index)
    return f"{symbol} · daily, split- and dividend-adjusted · {dates[0]}{EN_DASH}{dates[-1]}"


# --- rendering -----------------------------------------------------------------------------


def _sma_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's ``sma_N`` columns, shortest window first."""
    names = [str(c) for c in frame.columns if re.fullmatch(r"sma_\w+", str(c))]
    return sorted(names, key=lambda n: (0, int(n[4:])) if n[4:].isdigit() else (1, n))


def _ticks(frame: pd.DataFrame) -> tuple[list[int], list[str]]:
    """A handful of x positions with readable labels: New York hours (HH:MM) for intraday;
    for daily, the first session of each week, month or quarter, whichever gives a handful."""
    n = len(frame)
    if _is_intraday(frame.index):
        times = _new_york_times(frame.index)
        for step in (1, 2, 3, 4, 6):
            positions = [i for i, t in enumerate(times) if t.minute == 0 and t.hour % step == 0]
            if len(positions) <= MAX_TICKS:
                break
        if len(positions) < 2:
            positions = _evenly_spaced(n)
        return positions, [times[i].strftime("%H:%M") for i in positions]

    dates = _session_dates(frame.index)
    if n <= MAX_TICKS:
        return list(range(n)), [f"{d:%b} {d.day}" for d in dates]
    # The first session of each week, month, 2 months, quarter, half or year: the finest
    # grouping that gives a handful (the chart's first session is no tick: it may clip).
    groupings: list[tuple[Callable[[date], tuple[int, int]], bool]] = [
        (_iso_week, False),
        *((partial(_months, months), True) for months in (1, 2, 3, 6, 12)),
    ]
    positions: list[int] = []
    monthly = False
    for key, is_monthly in groupings:
        positions = [i for i in range(1, n) if key(dates[i]) != key(dates[i - 1])]
        monthly = is_monthly
        if len(positions) <= MAX_TICKS:
            break
    if len(positions) < 2:
        positions = _evenly_spaced(n)
        monthly = False
    labels = []
    for k, i in enumerate(positions):
        d = dates[i]
        if not monthly:
            labels.append(f"{d:%b} {d.day}")
        elif k == 0 or d.year != dates[positions[k - 1]].year:
            labels.append(f"{d:%b %Y}")
        else:
            labels.append(f"{d:%b}")
    return positions, labels


def _iso_week(d: date) -> tuple[int, int]:
    year, week, _ = d.isocalendar()
    return year, week


def _months(months: int, d: date) -> tuple[int, int]:
    return d.year, (d.month - 1) // months


def _evenly_spaced(n: int, count: int = 5) -> list[int]:
    """Positions inset from both ends (a label centred on the last candle would clip)."""
    spaced = np.rint(np.linspace(n * 0.08, (n - 1) * 0.92, min(n, count))).astype(int)
    return sorted({int(i) for i in spaced})


def _volume_label(value: float, _position: object = None) -> str:
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:g}{suffix}"
    return f"{value:g}"


def _style(ax: Axes) -> None:
    ax.tick_params(labelsize=7, length=3, pad=2)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#999999")


def render_candlestick(
    frame: pd.DataFrame, *, title: str, width_px: int = 640, height_px: int = 400
) -> bytes:
    """A candlestick PNG of ``frame`` (as :func:`daily_chart_frame` / :func:`intraday_chart_frame`
    return it): candles above, volume below (3:1), every ``sma_*`` column as a line.

    Rows sit at consecutive positions, so weekends, holidays and the night leave no gaps.
    The PNG is exactly ``width_px`` x ``height_px`` and palette-quantized: it is embedded as
    base64 in Dagster's event log, a dozen per materialization, so it is kept small (~11 KB
    for 120 sessions at 640x400).
    """
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise ChartError(f"cannot chart: the frame lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise ChartError("nothing to chart: the frame has no rows")
    if width_px < 100 or height_px < 100:
        raise ChartError(f"a chart needs at least 100x100 pixels, not {width_px}x{height_px}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    from PIL import Image

    values = {c: frame[c].to_numpy(dtype="float64") for c in OHLCV_COLUMNS}
    o, h, low, c, v = (values[k] for k in OHLCV_COLUMNS)
    n = len(frame)
    x = np.arange(n)
    up = c >= o
    body_width = 0.7 if n > 1 else 0.4

    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.04)
    ax_price = figure.add_subplot(grid[0])
    ax_volume = figure.add_subplot(grid[1], sharex=ax_price)
    figure.subplots_adjust(left=0.09, right=0.985, top=0.925, bottom=0.075)
    figure.suptitle(title, fontsize=8.5, y=0.985)

    # Price panel: wicks, then bodies (a doji gets a hairline body, still visible).
    price_values = [low, h] + [frame[s].to_numpy(dtype="float64") for s in _sma_columns(frame)]
    finite = np.concatenate([p[np.isfinite(p)] for p in price_values])
    lowest, highest = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = highest - lowest or abs(highest) or 1.0
    bottom = np.minimum(o, c)
    height = np.maximum(np.abs(c - o), span * 0.002)
    colors = np.where(up, UP_COLOR, DOWN_COLOR)
    ax_price.vlines(x, low, h, colors=colors, linewidth=0.8, zorder=2)
    ax_price.bar(
        x, height, body_width, bottom, color=colors, linewidth=0, antialiased=False, zorder=3
    )
    for k, name in enumerate(_sma_columns(frame)):
        series = frame[name].to_numpy(dtype="float64")
        if np.isfinite(series).any():
            label = name.replace("sma_", "SMA ")
            color = SMA_COLORS[k % len(SMA_COLORS)]
            ax_price.plot(x, series, color=color, linewidth=1.0, label=label, zorder=4)
    if ax_price.get_legend_handles_labels()[0]:
        ax_price.legend(loc="best", fontsize=7, frameon=True, framealpha=0.7, borderpad=0.3)
    ax_price.set_ylim(lowest - span * 0.04, highest + span * 0.04)
    ax_price.yaxis.set_major_locator(MaxNLocator(nbins=6))
    ax_price.tick_params(axis="x", labelbottom=False)

    # Volume panel, same colours but lighter.
    volume_colors = np.where(up, UP_VOLUME_COLOR, DOWN_VOLUME_COLOR)
    ax_volume.bar(x, v, body_width, color=volume_colors, linewidth=0, antialiased=False)
    top = float(np.nanmax(v)) if np.isfinite(v).any() else 0.0
    ax_volume.set_ylim(0, top * 1.1 if top > 0 else 1.0)
    ax_volume.yaxis.set_major_locator(MaxNLocator(nbins=2))
    ax_volume.yaxis.set_major_formatter(FuncFormatter(_volume_label))

    positions, labels = _ticks(frame)
    ax_volume.set_xticks(positions, labels)
    ax_volume.set_xlim(-0.6, n - 0.4)
    for ax in (ax_price, ax_volume):
        _style(ax)

    try:
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        image = Image.fromarray(rgba[:, :, :3].copy(), "RGB")
    finally:
        figure.clear()  # drop the artists now; the figure was never registered with pyplot
    # An adaptive palette keeps the few flat colours (candles, volume, white) exact and
    # shades the anti-aliased text and lines: about a third of the RGB PNG's size.
    quantized = image.quantize(
        colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    quantized.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class TickerChart:
    """A rendered chart with what it shows."""

    png: bytes
    frame: pd.DataFrame
    title: str

    @property
    def span(self) -> str:
        """What the chart covers, in words: "120 sessions 2026-06-01 - 2026-11-27"."""
        if _is_intraday(self.frame.index):
            times = _new_york_times(self.frame.index)
            first, last = f"{times[0]:%Y-%m-%d %H:%M}", f"{times[-1]:%H:%M} New York time"
            return f"{len(self.frame)} bars {first}{EN_DASH}{last}"
        index = self.frame.index
        return f"{len(self.frame)} sessions {index[0]}{EN_DASH}{index[-1]}"


def ticker_chart(
    bind: Engine | Connection,
    ticker: str,
    *,
    days: int = 120,
    intraday: bool = False,
    day: date | None = None,
    width_px: int = 640,
    height_px: int = 400,
) -> TickerChart:
    """The stored data of ``ticker`` read, titled and rendered: the last ``days`` sessions,
    or with ``intraday`` one New York session of 5-minute bars (``day``, else the latest)."""
    if intraday:
        frame = intraday_chart_frame(bind, ticker, day=day)
    else:
        frame = daily_chart_frame(bind, ticker, days=days)
    title = chart_title(_ticker(ticker), frame, intraday=intraday)
    png = render_candlestick(frame, title=title, width_px=width_px, height_px=height_px)
    return TickerChart(png, frame, title)
