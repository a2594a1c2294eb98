"""The reader API (quote_pipeline.read) against databases filled the way production fills them,
on SQLite and PostgreSQL: exact prices as the tables hold them, the documented dtypes, the
adjusted and raw series around a split, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline import read
from quote_pipeline.analytics import METRIC_COLUMNS
from quote_pipeline.models import InvalidSymbolError, Quote
from quote_pipeline.price_bars import AS_TRADED, DailyBar
from quote_pipeline.storage import create_db_engine, write_quotes
from quote_pipeline.storage.history import replace_daily_prices
from quote_pipeline.storage.metrics import read_daily_metrics
from quote_pipeline.storage.schema import (
    company_profiles,
    daily_prices,
    daily_prices_adjusted,
    news_article_tickers,
    news_articles,
    stocks,
)
from quote_pipeline.storage.schema_migrations import current_revision, head_revision, upgrade
from quote_pipeline_tests.support.filled_database import SPLIT, FilledDatabase, filled_database
from quote_pipeline_tests.support.postgres import PostgresServer, create_database, drop_database

READERS = tuple(read.READ_COLUMNS)


# --- one filled database per backend, shared by the module ---------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FilledDatabase]:
    """A database of its own, filled once for the module (~10 s): the readers only read it."""
    home = tmp_path_factory.mktemp("read")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QUOTE_PIPELINE_DATA_DIR", str(home / "data"))
        env.delenv("QUOTE_PIPELINE_DATABASE_URL", raising=False)
        env.delenv("DAGSTER_HOME", raising=False)
        if request.param == "sqlite":
            with filled_database(f"sqlite:///{home / 'quotes.db'}") as database:
                yield database
            return
        server: PostgresServer = request.getfixturevalue("postgres_server")
        name = f"quote_pipeline_read_{uuid.uuid4().hex[:8]}"
        url = create_database(server.url, name)
        try:
            with filled_database(url) as database:
                yield database
        finally:
            drop_database(server.url, name)


@pytest.fixture
def engine(filled: FilledDatabase) -> Iterator[Engine]:
    engine = create_db_engine(filled.url, upgrade=False)
    yield engine
    engine.dispose()


def _stored_text(conn: sa.Connection, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """An exact column as the database holds its digits (SQLite: the text; PostgreSQL: the
    NUMERIC's own text form, which keeps its scale)."""
    if conn.dialect.name == "sqlite":
        return sa.type_coerce(column, sa.String()).label(f"{column.name}_text")
    return sa.cast(column, sa.Text()).label(f"{column.name}_text")


def _assert_exact(frame_values: pd.Series, stored: list[Decimal | None]) -> None:
    assert frame_values.dtype == object
    assert len(frame_values) == len(stored)
    for got, want in zip(frame_values.tolist(), stored, strict=True):
        if want is None:
            assert got is None
        else:
            assert type(got) is Decimal
            assert got == want and got.as_tuple() == want.as_tuple()


def _assert_same_digits(frame_values: pd.Series, stored_text: list[str | None]) -> None:
    """exact="str": each string is the stored value with the same digits and scale."""
    assert frame_values.dtype == object
    for got, want in zip(frame_values.tolist(), stored_text, strict=True):
        if want is None:
            assert got is None
            continue
        assert type(got) is str
        assert "E" not in got.upper()
        assert Decimal(got).as_tuple() == Decimal(want).as_tuple()


def _assert_dtypes(frame: pd.DataFrame, reader: str) -> None:
    """The frame has exactly READ_COLUMNS[reader], in order, with their dtypes."""
    columns = read.READ_COLUMNS[reader]
    index = read.READ_INDEX[reader]
    if index is None:
        assert isinstance(frame.index, pd.RangeIndex)
        expected = list(columns)
    else:
        assert frame.index.name == index
        expected = [name for name in columns if name != index]
    assert list(frame.columns) == expected
    for name, dtype in columns.items():
        values = frame.index if name == index else frame[name]
        if dtype == read.EXACT:
            assert values.dtype == object, name
            assert all(v is None or isinstance(v, Decimal | str) for v in values), name
        elif dtype == read.TEXT:
            assert pd.api.types.is_string_dtype(values.dtype), (name, values.dtype)
            assert all(isinstance(v, str) or pd.isna(v) for v in values), name
        else:
            assert str(values.dtype) == dtype, (name, values.dtype)
    if index == "date":
        assert isinstance(frame.index, pd.DatetimeIndex)
        assert frame.index.tz is None


# --- contracts -------------------------------------------------------------------------------


def test_read_columns_describe_every_reader() -> None:
    dtypes = {read.EXACT, read.FLOAT64, read.INT64, read.UTC_TIMESTAMP, read.DATE, read.TEXT}
    dtypes.add(read.BOOLEAN)
    assert set(read.READ_COLUMNS) == set(read.READ_SOURCES) == set(read.READ_INDEX)
    for reader, columns in read.READ_COLUMNS.items():
        assert set(columns.values()) <= dtypes, reader
        assert list(read.READ_SOURCES[reader]) == list(columns), reader
        index = read.READ_INDEX[reader]
        assert index is None or next(iter(columns)) == index
    assert [c for c, d in read.READ_COLUMNS["metrics"].items() if d == read.FLOAT64] == list(
        METRIC_COLUMNS
    )
    # The docstrings are generated from the same contract.
    assert "adj_close``: exact" in (read.prices.__doc__ or "")
    assert "sma_50``: float64" in (read.metrics.__doc__ or "")


def test_importing_the_reader_loads_no_dagster() -> None:
    code = (
        "import quote_pipeline.read, sys; "
        "loaded = [m for m in sys.modules if m.startswith('dagster')]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the filled database ---------------------------------------------------------------------


def test_latest_quotes_are_the_stocks_table_exactly(filled: FilledDatabase, engine: Engine) -> None:
    frame = read.latest_quotes(database_url=filled.url)
    text = read.latest_quotes(database_url=filled.url, exact="str")
    _assert_dtypes(frame, "latest_quotes")
    _assert_dtypes(text, "latest_quotes")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                stocks, _stored_text(conn, stocks.c.price), _stored_text(conn, stocks.c.change)
            ).order_by(stocks.c.ticker)
        ).all()
        names = dict(
            conn.execute(sa.select(company_profiles.c.ticker, company_profiles.c.company_name))
            .tuples()
            .all()
        )
    assert list(frame.index) == [r.ticker for r in rows] == sorted(filled.tickers)
    _assert_exact(frame["price"], [r.price for r in rows])
    _assert_exact(frame["change"], [r.change for r in rows])
    _assert_same_digits(text["price"], [r.price_text for r in rows])
    _assert_same_digits(text["change"], [r.change_text for r in rows])
    assert frame["volume"].tolist() == [r.volume for r in rows]
    assert frame["quoted_at"].tolist() == [pd.Timestamp(r.quoted_at) for r in rows]
    assert str(frame["quoted_at"].dt.tz) == "UTC"
    assert frame["company_name"].tolist() == [names[r.ticker] for r in rows]
    assert frame["source"].tolist() == [r.source for r in rows]
    assert set(frame["source"]) == {"fmp"}

    one = read.latest_quotes("msft", database_url=filled.url)
    assert list(one.index) == ["MSFT"]
    assert one.loc["MSFT", "price"] == frame.loc["MSFT", "price"]


def test_adjusted_prices_are_the_table_exactly(filled: FilledDatabase, engine: Engine) -> None:
    frame = read.prices(list(filled.tickers), database_url=filled.url)
    text = read.prices(list(filled.tickers), database_url=filled.url, exact="str")
    _assert_dtypes(frame, "prices")
    a = daily_prices_adjusted.c
    exact = ("adj_open", "adj_high", "adj_low", "adj_close", "split_factor", "dividend_factor")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(daily_prices_adjusted, *(_stored_text(conn, a[c]) for c in exact)).order_by(
                a.ticker, a.date
            )
        ).all()
    assert len(rows) == len(frame) > 200
    assert frame["ticker"].tolist() == [r.ticker for r in rows]
    assert list(frame.index) == [pd.Timestamp(r.date) for r in rows]
    for column in exact:
        _assert_exact(frame[column], [getattr(r, column) for r in rows])
        _assert_same_digits(text[column], [getattr(r, f"{column}_text") for r in rows])
    assert frame["adj_volume"].tolist() == [r.adj_volume for r in rows]


def test_raw_prices_are_the_table_exactly(filled: FilledDatabase, engine: Engine) -> None:
    frame = read.prices(["NVDA", "AAPL"], adjusted=False, database_url=filled.url)
    text = read.prices(["NVDA", "AAPL"], adjusted=False, database_url=filled.url, exact="str")
    _assert_dtypes(frame, "prices(adjusted=False)")
    p = daily_prices.c
    exact = ("open", "high", "low", "close", "change", "change_percent", "vwap")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(daily_prices, *(_stored_text(conn, p[c]) for c in exact))
            .where(p.ticker.in_(["AAPL", "NVDA"]))
            .order_by(p.ticker, p.date)
        ).all()
    assert frame["ticker"].tolist() == [r.ticker for r in rows]  # sorted by ticker, then date
    assert frame["ticker"].iloc[0] == "AAPL"
    for column in exact:
        _assert_exact(frame[column], [getattr(r, column) for r in rows])
        _assert_same_digits(text[column], [getattr(r, f"{column}_text") for r in rows])
    assert frame["volume"].tolist() == [r.volume for r in rows]
    assert set(frame["price_basis"]) == {"as_traded"}
    assert frame["source"].tolist() == [r.source for r in rows]
    assert set(frame["source"]) == {"fmp"}
    assert frame["fetched_at"].tolist() == [pd.Timestamp(r.fetched_at) for r in rows]
    assert str(frame["fetched_at"].dt.tz) == "UTC"


def test_one_ticker_is_a_date_indexed_series_within_the_range(filled: FilledDatabase) -> None:
    frame = read.prices("aapl", start="2026-09-01", end=date(2026, 9, 30), database_url=filled.url)
    assert set(frame["ticker"]) == {"AAPL"}
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert frame.index[0] == pd.Timestamp("2026-09-01")  # Labor Day is the 7th
    assert frame.index[-1] == pd.Timestamp("2026-09-30")
    assert len(frame) == 21
    assert frame["adj_close"].astype(float).dtype == np.float64  # what a chart converts to
    # A datetime bound is its date.
    same = read.prices(
        "AAPL",
        start=datetime(2026, 9, 1, 15, tzinfo=UTC),
        end=pd.Timestamp("2026-09-30"),
        database_url=filled.url,
    )
    pd.testing.assert_frame_equal(same, frame)


def test_adjusted_and_raw_prices_around_the_split(filled: FilledDatabase) -> None:
    ticker, ex_date, numerator, denominator = SPLIT
    ratio = Decimal(numerator) / Decimal(denominator)
    raw = read.prices(ticker, adjusted=False, database_url=filled.url)
    adjusted = read.prices(ticker, database_url=filled.url)
    assert list(raw.index) == list(adjusted.index)
    ex = pd.Timestamp(ex_date)
    before, after = adjusted.index[adjusted.index < ex][-1], ex

    # As traded, the close halves overnight; adjusted, it is continuous.
    raw_jump = raw.loc[before, "close"] / raw.loc[after, "close"]
    adjusted_jump = adjusted.loc[before, "adj_close"] / adjusted.loc[after, "adj_close"]
    assert abs(raw_jump - ratio) < Decimal("0.2")
    assert abs(adjusted_jump - 1) < Decimal("0.1")

    earlier, later = adjusted.index < ex, adjusted.index >= ex
    assert set(adjusted.loc[earlier, "split_factor"]) == {ratio}
    assert set(adjusted.loc[later, "split_factor"]) == {Decimal(1)}
    # Volume is multiplied by the split ratio, exactly (a whole number of shares).
    assert (adjusted["adj_volume"][earlier] == raw["volume"][earlier] * 2).all()
    assert (adjusted["adj_volume"][later] == raw["volume"][later]).all()
    # Prices are divided by it (and multiplied by the dividend factor, rounded to 8 places).
    for day in adjusted.index:
        row, traded = adjusted.loc[day], raw.loc[day]
        expected = traded["close"] / row["split_factor"] * row["dividend_factor"]
        assert abs(row["adj_close"] - expected) <= expected * Decimal("1e-9")


def test_metrics_are_read_daily_metrics(filled: FilledDatabase, engine: Engine) -> None:
    frame = read.metrics(["MSFT", "AAPL"], database_url=filled.url)
    _assert_dtypes(frame, "metrics")
    stored = read_daily_metrics(engine, ["AAPL", "MSFT"]).set_index("date")
    stored.index = pd.DatetimeIndex(pd.to_datetime(stored.index)).as_unit("us")
    pd.testing.assert_frame_equal(frame, stored, check_exact=True, check_dtype=False)
    for column in METRIC_COLUMNS:
        np.testing.assert_array_equal(frame[column].to_numpy(), stored[column].to_numpy())

    one = read.metrics("AAPL", start="2026-10-01", database_url=filled.url)
    assert one.index[0] >= pd.Timestamp("2026-10-01")
    assert one.index[-1] == pd.Timestamp(filled.last_session)
    # SMA 50 needs 50 sessions: NaN at the start of the history, a float at its end.
    history = read.metrics("AAPL", database_url=filled.url)
    assert history["sma_50"].iloc[:49].isna().all()
    assert history["sma_50"].iloc[49:].notna().all()


def test_profiles_are_the_table(filled: FilledDatabase, engine: Engine) -> None:
    frame = read.profiles(database_url=filled.url)
    text = read.profiles(database_url=filled.url, exact="str")
    _assert_dtypes(frame, "profiles")
    c = company_profiles.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(company_profiles, _stored_text(conn, c.market_cap)).order_by(c.ticker)
        ).all()
    assert list(frame.index) == [r.ticker for r in rows] == sorted(filled.tickers)
    _assert_exact(frame["market_cap"], [r.market_cap for r in rows])
    _assert_same_digits(text["market_cap"], [r.market_cap_text for r in rows])
    assert frame["is_etf"].tolist() == [r.is_etf for r in rows]
    assert frame["status"].tolist() == [r.status for r in rows]
    assert frame["cik"].tolist() == [r.cik for r in rows]  # zero-padded text stays text
    ipo = [pd.NaT if r.ipo_date is None else pd.Timestamp(r.ipo_date) for r in rows]
    assert frame["ipo_date"].tolist() == ipo
    assert frame["fetched_at"].tolist() == [pd.Timestamp(r.fetched_at) for r in rows]
    assert frame["missing_since"].isna().all()

    nvda = read.profiles(["NVDA"], database_url=filled.url)
    assert list(nvda.index) == ["NVDA"]


def test_news_newest_first_within_the_days(filled: FilledDatabase, engine: Engine) -> None:
    started = datetime.now(UTC)
    frame = read.news("aapl", days=7, database_url=filled.url)
    _assert_dtypes(frame, "news")
    assert len(frame) > 0
    published = frame["published_at"]
    assert str(published.dt.tz) == "UTC"
    assert published.is_monotonic_decreasing
    assert (published >= pd.Timestamp(started - timedelta(days=7))).all()
    assert frame["sentiment"].between(-1, 1).all()
    assert set(frame["sentiment_label"]) <= {"positive", "negative", "neutral"}

    # Every article about AAPL of those days, none other.
    with engine.connect() as conn:
        urls = set(
            conn.scalars(
                sa.select(news_articles.c.url)
                .join_from(news_article_tickers, news_articles)
                .where(
                    news_article_tickers.c.ticker == "AAPL",
                    news_articles.c.published_at >= started - timedelta(days=7),
                )
            )
        )
    assert set(frame["url"]) == urls

    month = read.news("AAPL", days=30, database_url=filled.url)
    assert len(month) > len(frame)
    assert read.news("AAPL", days=0, database_url=filled.url).empty


def test_environment_variable_and_engine(
    filled: FilledDatabase, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", filled.url)
    from_env = read.latest_quotes()
    from_engine = read.latest_quotes(engine=engine)
    pd.testing.assert_frame_equal(from_env, from_engine)
    with engine.connect() as conn:  # the caller's engine is left usable
        assert conn.scalar(sa.select(sa.func.count()).select_from(stocks)) == len(from_env)
    with pytest.raises(TypeError, match="not both"):
        read.latest_quotes(database_url=filled.url, engine=engine)


def test_empty_results_keep_the_contract(filled: FilledDatabase) -> None:
    frames = {
        "latest_quotes": read.latest_quotes(["ZZZZ"], database_url=filled.url),
        "prices": read.prices("ZZZZ", database_url=filled.url),
        "prices(adjusted=False)": read.prices([], adjusted=False, database_url=filled.url),
        "metrics": read.metrics("AAPL", start="2030-01-01", database_url=filled.url),
        "profiles": read.profiles("ZZZZ", database_url=filled.url),
        "news": read.news("ZZZZ", database_url=filled.url),
    }
    assert set(frames) == set(READERS)
    for reader, frame in frames.items():
        assert frame.empty, reader
        _assert_dtypes(frame, reader)


def test_the_provider_of_each_row_is_read(database_url: str) -> None:
    engine = create_db_engine(database_url)  # migrated to the head, as the pipeline runs
    try:
        at = datetime(2026, 11, 24, 15, 1, tzinfo=UTC)
        quotes = [
            Quote("AAPL", Decimal("232.80"), 10, None, at, at),
            Quote("MSFT", Decimal("410.12"), 20, Decimal("-1"), at, at, "massive"),
        ]
        write_quotes(engine, quotes, written_at=at)
        day = date(2026, 11, 24)
        bars = [
            DailyBar(s, day, Decimal(1), Decimal(2), Decimal(1), Decimal(2), 5, None, None, None,
                     at, AS_TRADED, source)
            for s, source in (("AAPL", "massive"), ("MSFT", "fmp"))
        ]  # fmt: skip
        replace_daily_prices(engine, ["AAPL", "MSFT"], day, day, bars)

        quoted = read.latest_quotes(engine=engine)
        _assert_dtypes(quoted, "latest_quotes")
        assert quoted["source"].to_dict() == {"AAPL": "fmp", "MSFT": "massive"}
        raw = read.prices(["AAPL", "MSFT"], adjusted=False, engine=engine)
        _assert_dtypes(raw, "prices(adjusted=False)")
        assert raw["source"].tolist() == ["massive", "fmp"]
        assert list(raw["ticker"]) == ["AAPL", "MSFT"]
    finally:
        engine.dispose()


# --- errors (no filled database needed) ------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: read.prices("AA PL"),
        lambda: read.metrics(["AAPL", "$$$"]),
        lambda: read.latest_quotes(["bad symbol"]),
        lambda: read.profiles("x" * 40),
        lambda: read.news("?"),
    ],
)
def test_bad_symbol_is_a_one_line_error_before_any_read(call: Any) -> None:
    # No database is set up: the symbol is refused before one is opened.
    with pytest.raises(InvalidSymbolError) as raised:
        call()
    assert isinstance(raised.value, ValueError)
    assert "\n" not in str(raised.value)
    assert "invalid ticker symbol" in str(raised.value)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exact must be 'decimal' or 'str'"):
        read.prices("AAPL", exact="float")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="days must be >= 0"):
        read.news("AAPL", days=-1)
    with pytest.raises(TypeError, match="one ticker"):
        read.news(["AAPL"])  # type: ignore[arg-type]


def test_unreachable_database_is_a_one_line_error_without_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://reader:s3cret-pw@127.0.0.1:1/nope"
    with pytest.raises(read.DatabaseUnavailableError) as raised:
        read.prices("AAPL", database_url=url)
    message = str(raised.value)
    assert "\n" not in message
    assert "s3cret-pw" not in message
    assert "postgresql://reader:***@127.0.0.1:1/nope" in message
    assert "refused" in message.lower()
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert isinstance(raised.value, ConnectionError)

    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", url)  # the default source
    with pytest.raises(read.DatabaseUnavailableError, match=r"127\.0\.0\.1:1/nope"):
        read.latest_quotes()


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "quotes.db"
    with pytest.raises(read.DatabaseUnavailableError, match="the file does not exist") as raised:
        read.latest_quotes(database_url=f"sqlite:///{path}")
    assert "\n" not in str(raised.value)
    assert not path.exists() and not path.parent.exists()


def test_a_schema_behind_the_head_is_refused_not_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url, upgrade=False)
    try:
        with engine.begin() as conn:  # an existing, empty file: no schema at all
            conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
        with pytest.raises(read.SchemaNotCurrentError, match="no quote_pipeline schema"):
            read.profiles(database_url=url)

        upgrade(engine, "0004")
        with pytest.raises(read.SchemaNotCurrentError) as raised:
            read.prices("AAPL", database_url=url)
        message = str(raised.value)
        assert "\n" not in message
        assert f"revision 0004, behind this code's head {head_revision()}" in message
        assert "run `quote-pipeline db upgrade`" in message
        assert current_revision(engine) == "0004"  # the reader did not migrate it

        with engine.begin() as conn:  # migrated by a newer quote_pipeline
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(read.SchemaNotCurrentError, match="newer than this quote_pipeline"):
            read.metrics("AAPL", engine=engine)
    finally:
        engine.dispose()
