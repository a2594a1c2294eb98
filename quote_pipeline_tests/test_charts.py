"""Candlestick charts (quote_pipeline/charts.py) and `quote-pipeline chart`: frames read from
the stored tables on SQLite and PostgreSQL, PNGs that are valid, exactly sized, small and
actually drawn, and the command's one-line output and errors (run in-process)."""

from __future__ import annotations

import io
import math
import re
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.engine import Engine

from quote_pipeline import charts
from quote_pipeline.charts import (
    ChartError,
    chart_title,
    daily_chart_frame,
    intraday_chart_frame,
    render_candlestick,
)
from quote_pipeline.cli import main
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.storage import create_db_engine
from quote_pipeline.storage.schema import daily_metrics, daily_prices_adjusted, intraday_bars
from quote_pipeline_tests.support.days import weekdays

PLACES = Decimal("1e-8")
BUDGET = 40_000  # bytes for a 120-session chart at 640x400 (base64 in Dagster's event log)
FETCHED = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def price(i: int, base: float = 100.0) -> Decimal:
    """A wavy, deterministic series: up and down days, 8 decimal places."""
    return Decimal(base + 4 * math.sin(i / 3) + 0.05 * i).quantize(PLACES)


def insert_daily(
    engine: Engine, ticker: str, days: list[date], *, metrics_until: int | None = None
) -> None:
    """Adjusted rows for ``days``; daily_metrics rows for the first ``metrics_until`` of them
    (sma_20 from the 20th session, sma_50 never: too few)."""
    adjusted, metrics = [], []
    for i, day in enumerate(days):
        o, c = price(i - 1), price(i)
        adjusted.append(
            {
                "ticker": ticker,
                "date": day,
                "adj_open": o,
                "adj_high": max(o, c) + Decimal("0.75"),
                "adj_low": min(o, c) - Decimal("0.5"),
                "adj_close": c,
                "adj_volume": 1_000_000 + 10_000 * i,
                "split_factor": Decimal(1),
                "dividend_factor": Decimal(1),
                "raw_fetched_at": FETCHED,
            }
        )
        if metrics_until is None or i < metrics_until:
            metrics.append(
                {
                    "ticker": ticker,
                    "date": day,
                    "sma_20": 100.0 + i if i >= 19 else None,
                    "sma_50": None,
                    "adjusted_fetched_at": FETCHED,
                }
            )
    with engine.begin() as conn:
        conn.execute(sa.insert(daily_prices_adjusted), adjusted)
        if metrics:
            conn.execute(sa.insert(daily_metrics), metrics)


def ny(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NEW_YORK)


def insert_intraday(engine: Engine, ticker: str, starts: list[datetime]) -> None:
    rows = []
    for i, start in enumerate(starts):
        o, c = price(i - 1, 230), price(i, 230)
        rows.append(
            {
                "ticker": ticker,
                "bar_start": start.astimezone(UTC),
                "open": o,
                "high": max(o, c) + Decimal("0.1"),
                "low": min(o, c) - Decimal("0.1"),
                "close": c,
                "volume": 50_000 + i,
                "fetched_at": FETCHED,
            }
        )
    with engine.begin() as conn:
        conn.execute(sa.insert(intraday_bars), rows)


def session_bars(day: date, count: int) -> list[datetime]:
    """``count`` 5-minute bars from 09:30 New York time."""
    return [ny(day, 9, 30) + timedelta(minutes=5 * i) for i in range(count)]


def synthetic_frame(n: int = 120, *, smas: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 200 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    open_ = np.r_[200.0, close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.006,
            "low": np.minimum(open_, close) * 0.994,
            "close": close,
            "volume": rng.integers(20_000_000, 90_000_000, n).astype("float64"),
        },
        index=pd.Index(weekdays(date(2026, 6, 1), n), name="date"),
    )
    if smas:
        frame["sma_20"] = frame["close"].rolling(20).mean()
        frame["sma_50"] = frame["close"].rolling(50).mean()
    return frame


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])


def pixels_near(image: Image.Image, hex_color: str, tolerance: int = 12) -> int:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(pixels - rgb(hex_color)).max(axis=2) <= tolerance).sum())


def opened(png: bytes) -> Image.Image:
    Image.open(io.BytesIO(png)).verify()  # a valid PNG (verify() leaves the image unusable)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


# --- rendering -----------------------------------------------------------------------------


def test_a_120_session_chart_is_a_small_exactly_sized_png_that_draws_candles() -> None:
    frame = synthetic_frame()
    assert (frame["close"] >= frame["open"]).any() and (frame["close"] < frame["open"]).any()
    png = render_candlestick(frame, title=chart_title("AAPL", frame))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = opened(png)
    assert image.size == (640, 400)
    assert len(png) <= BUDGET, f"{len(png)} bytes"
    # Candle bodies and volume bars in their colours, plenty of them: it was drawn.
    for color in (charts.UP_COLOR, charts.DOWN_COLOR):
        assert pixels_near(image, color) > 1_000, color
    for color in (charts.UP_VOLUME_COLOR, charts.DOWN_VOLUME_COLOR):
        assert pixels_near(image, color) > 1_000, color
    white = pixels_near(image, "#ffffff", tolerance=0)
    assert 0.3 * 640 * 400 < white < 0.95 * 640 * 400


@pytest.mark.parametrize(("width", "height"), [(320, 200), (1000, 500), (641, 401)])
def test_the_png_is_exactly_the_pixels_asked_for(width: int, height: int) -> None:
    frame = synthetic_frame(60)
    png = render_candlestick(frame, title="X", width_px=width, height_px=height)
    assert opened(png).size == (width, height)


def test_every_sma_column_is_drawn_as_a_line() -> None:
    with_lines = opened(render_candlestick(synthetic_frame(), title="X"))
    without = opened(render_candlestick(synthetic_frame(smas=False), title="X"))
    for color in charts.SMA_COLORS[:2]:  # sma_20, sma_50 (the legend alone is a few pixels)
        assert pixels_near(with_lines, color, tolerance=40) > 150, color
        assert pixels_near(without, color, tolerance=40) < 20, color


def test_odd_frames_still_render() -> None:
    one = synthetic_frame(1)
    assert opened(render_candlestick(one, title="one")).size == (640, 400)
    flat = synthetic_frame(5, smas=False).assign(open=10.0, high=10.0, low=10.0, close=10.0)
    assert opened(render_candlestick(flat, title="flat")).size == (640, 400)
    all_nan = synthetic_frame(10).assign(sma_50=np.nan)  # a young ticker: no sma_50 yet
    assert opened(render_candlestick(all_nan, title="young")).size == (640, 400)


def test_frames_that_cannot_be_charted_are_a_chart_error() -> None:
    with pytest.raises(ChartError, match="no rows"):
        render_candlestick(synthetic_frame().iloc[:0], title="X")
    with pytest.raises(ChartError, match="volume"):
        render_candlestick(synthetic_frame().drop(columns="volume"), title="X")


def test_importing_charts_leaves_matplotlib_alone_and_rendering_leaves_no_pyplot() -> None:
    code = (
        "import sys\n"
        "import quote_pipeline.charts as c\n"
        "assert 'matplotlib' not in sys.modules\n"
        "import pandas as pd\n"
        "f = pd.DataFrame({k: [1.0, 2.0] for k in c.OHLCV_COLUMNS}, index=[1, 2])\n"
        "f.index = pd.to_datetime(['2026-06-01', '2026-06-02']).date\n"
        "assert c.render_candlestick(f, title='t')[:4] == b'\\x89PNG'\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_titles() -> None:
    frame = synthetic_frame(120)
    assert chart_title("aapl", frame) == (
        "AAPL · daily, split- and dividend-adjusted · 2026-06-01 \N{EN DASH} 2026-11-13"
    )
    bars = pd.DataFrame(
        {k: [1.0, 1.0] for k in charts.OHLCV_COLUMNS},
        index=pd.DatetimeIndex([ny(date(2026, 11, 27), 9, 30), ny(date(2026, 11, 27), 9, 35)])
        .tz_convert(UTC)
        .rename("bar_start"),
    )
    assert chart_title("AAPL", bars, intraday=True) == (
        "AAPL · 5-minute bars, as traded · 2026-11-27 (New York time)"
    )


# --- frames from the database ----------------------------------------------------------------


def test_daily_frame_is_the_last_sessions_in_order_with_floats_and_smas(engine: Engine) -> None:
    days = weekdays(date(2026, 6, 1), 30)
    insert_daily(engine, "AAPL", days, metrics_until=27)  # the last 3 sessions: no metrics row
    insert_daily(engine, "MSFT", weekdays(date(2026, 6, 1), 40))  # another ticker, not mixed in

    frame = daily_chart_frame(engine, " aapl", days=10)
    assert list(frame.index) == days[-10:]
    assert frame.index.name == "date"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "sma_20", "sma_50"]
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert frame["close"].tolist() == [float(price(i)) for i in range(20, 30)]
    assert frame["volume"].tolist() == [float(1_000_000 + 10_000 * i) for i in range(20, 30)]
    assert frame["sma_20"].iloc[:7].tolist() == [100.0 + i for i in range(20, 27)]
    assert frame["sma_20"].iloc[7:].isna().all()  # no daily_metrics row
    assert frame["sma_50"].isna().all()  # rows, but NULL

    assert list(daily_chart_frame(engine, "AAPL", days=500).index) == days  # all there is
    with engine.connect() as conn:  # a caller's connection works as well as an engine
        assert len(daily_chart_frame(conn, "AAPL")) == 30


def test_daily_frame_errors_are_one_line(engine: Engine) -> None:
    with pytest.raises(ChartError) as no_data:
        daily_chart_frame(engine, "ZZZZ")
    assert "no adjusted daily prices stored for ZZZZ" in str(no_data.value)
    assert "daily_prices" in str(no_data.value) and "\n" not in str(no_data.value)
    with pytest.raises(ChartError) as invalid:
        daily_chart_frame(engine, "BAD SYMBOL!")
    assert "'BAD SYMBOL!'" in str(invalid.value) and "\n" not in str(invalid.value)
    with pytest.raises(ChartError, match="at least 1"):
        daily_chart_frame(engine, "AAPL", days=0)


def test_intraday_frame_is_one_new_york_session_latest_by_default(engine: Engine) -> None:
    earlier, latest = date(2026, 11, 25), date(2026, 11, 27)
    # 19:55 New York is 00:55 UTC the next day: still the 27th's session.
    late = ny(latest, 19, 55)
    insert_intraday(engine, "AAPL", [*session_bars(earlier, 12), *session_bars(latest, 30), late])
    insert_intraday(engine, "MSFT", session_bars(date(2026, 11, 30), 5))  # later, other ticker

    frame = intraday_chart_frame(engine, "aapl")
    assert frame.index.name == "bar_start"
    assert str(frame.index.tz) == "UTC"
    expected = [t.astimezone(UTC) for t in [*session_bars(latest, 30), late]]
    assert [t.to_pydatetime() for t in frame.index] == expected
    assert frame.index.is_monotonic_increasing
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "sma_20"]
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    # sma_20 over the session's 5-minute bars: NaN for the first 19.
    assert frame["sma_20"].iloc[:19].isna().all()
    assert frame["sma_20"].iloc[19] == pytest.approx(frame["close"].iloc[:20].mean())
    assert frame["sma_20"].iloc[-1] == pytest.approx(frame["close"].iloc[-20:].mean())

    chosen = intraday_chart_frame(engine, "AAPL", day=earlier)
    assert [t.to_pydatetime() for t in chosen.index] == [
        t.astimezone(UTC) for t in session_bars(earlier, 12)
    ]
    assert chosen["sma_20"].isna().all()  # 12 bars: the window never fills

    with pytest.raises(ChartError, match=r"AAPL on 2026-11-26 .*intraday_bars"):
        intraday_chart_frame(engine, "AAPL", day=date(2026, 11, 26))
    with pytest.raises(ChartError, match=r"no intraday bars stored for ZZZZ: .*intraday_bars"):
        intraday_chart_frame(engine, "ZZZZ")


def test_an_intraday_chart_shows_new_york_hours(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    day = date(2026, 7, 15)  # summer time: 09:30 New York is 13:30 UTC
    insert_intraday(engine, "AAPL", session_bars(day, 78))
    frame = intraday_chart_frame(engine, "AAPL")
    positions, labels = charts._ticks(frame)
    assert labels == ["10:00", "11:00", "12:00", "13:00", "14:00", "15:00"]
    assert positions == [6, 18, 30, 42, 54, 66]
    png = render_candlestick(frame, title=chart_title("AAPL", frame, intraday=True))
    assert opened(png).size == (640, 400)


# --- the command ---------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--database-url", url, "chart", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_chart_command_writes_the_png_and_says_so(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = weekdays(date(2026, 6, 1), 130)
    insert_daily(create_db_engine(sqlite_url), "AAPL", days)
    out = tmp_path / "charts" / "aapl-daily.png"
    out.parent.mkdir()

    code, stdout, stderr = run_cli(capsys, sqlite_url, "aapl", "--out", str(out))
    assert code == 0, stderr
    png = out.read_bytes()
    assert opened(png).size == (640, 400)
    assert len(png) <= BUDGET
    size = f"{len(png) / 1000:.1f} kB"
    assert stdout == (
        f"wrote {out} (640x400, {size}): 120 sessions {days[10]} \N{EN DASH} {days[-1]}\n"
    )


def test_chart_command_default_paths_and_intraday(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = create_db_engine(sqlite_url)
    insert_daily(engine, "BRK.B", weekdays(date(2026, 6, 1), 40))
    insert_intraday(
        engine,
        "BRK.B",
        [*session_bars(date(2026, 11, 25), 78), *session_bars(date(2026, 11, 27), 42)],
    )
    monkeypatch.chdir(tmp_path)

    code, stdout, stderr = run_cli(capsys, sqlite_url, "brk.b", "--days", "30")
    assert code == 0, stderr
    assert re.fullmatch(r"wrote BRK\.B\.png \(640x400, \d+\.\d kB\): 30 sessions .*\n", stdout)
    assert opened((tmp_path / "BRK.B.png").read_bytes()).size == (640, 400)

    code, stdout, stderr = run_cli(capsys, sqlite_url, "BRK.B", "--intraday")
    assert code == 0, stderr
    assert re.fullmatch(
        r"wrote BRK\.B-intraday\.png \(640x400, \d+\.\d kB\): "
        r"42 bars 2026-11-27 09:30 \N{EN DASH} 12:55 New York time\n",
        stdout,
    )
    assert (tmp_path / "BRK.B-intraday.png").exists()

    code, stdout, stderr = run_cli(
        capsys, sqlite_url, "BRK.B", "--intraday", "--date", "2026-11-25", "--out", "wed.png"
    )
    assert code == 0, stderr
    assert "78 bars 2026-11-25 09:30 \N{EN DASH} 15:55 New York time" in stdout
    assert (tmp_path / "wed.png").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ZZZZ"], 1, "no adjusted daily prices stored for ZZZZ"),
        (["ZZZZ", "--intraday"], 1, "no intraday bars stored for ZZZZ"),
        (["AAPL", "--intraday", "--date", "2026-11-26"], 1, "no intraday bars stored for AAPL"),
        (["BAD SYMBOL!"], 2, "invalid ticker symbol(s): 'BAD SYMBOL!'"),
        (["AAPL", "--date", "2026-11-26"], 2, "--date picks the session of an --intraday chart"),
        (["AAPL", "--intraday", "--days", "5"], 2, "--days is for daily charts"),
        (["AAPL", "--out", "no/such/dir/x.png"], 1, "cannot write no/such/dir/x.png"),
    ],
)
def test_chart_command_errors_are_one_line(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    insert_daily(create_db_engine(sqlite_url), "AAPL", weekdays(date(2026, 6, 1), 5))
    monkeypatch.chdir(tmp_path)
    returned, stdout, stderr = run_cli(capsys, sqlite_url, *args)
    assert returned == code
    assert stdout == ""
    assert stderr.startswith(f"quote-pipeline: error: {message}")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert list(tmp_path.glob("*.png")) == []


def test_chart_command_usage_errors_exit_2(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in (["AAPL", "--days", "0"], ["AAPL", "--intraday", "--date", "27/11/2026"]):
        with pytest.raises(SystemExit) as exited:
            main(["--database-url", sqlite_url, "chart", *bad])
        assert exited.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
