"""Read the pipeline's tables into pandas DataFrames: for notebooks, scripts and apps.

Plain Python: no Dagster, no HTTP, no schema migration. Each function reads the database at
``$QUOTE_PIPELINE_DATABASE_URL`` (or the local SQLite default, see
:func:`quote_pipeline.storage.database.resolve_database_url`); pass ``database_url=`` to read
another one, or ``engine=`` to read through an engine of your own (it is left open)::

    from quote_pipeline import read

    quotes = read.latest_quotes()                      # index: ticker
    aapl = read.prices("AAPL", start="2026-01-01")      # index: date (DatetimeIndex)
    aapl["adj_close"].astype(float).plot()              # floats for the chart only
    stats = read.metrics("AAPL")                        # sma_20, rsi_14, … as float64
    headlines = read.news("AAPL", days=7)               # newest first

The dtype rules, the same in every function (``READ_COLUMNS`` lists each column's):

- **Prices and other exact amounts** (``exact``) are never floats: with ``exact="decimal"``
  (the default) they are :class:`decimal.Decimal` objects, with ``exact="str"`` exact strings
  in positional notation (``"232.80"``, never ``"2.328E+2"``; ``Decimal(s)`` gives the stored
  value back). Either way the column's dtype is ``object``, and NULL is ``None``. Convert with
  ``.astype(float)`` only where a float is wanted (a chart).
- **Statistics** (``daily_metrics``, news ``sentiment``) are ``float64``; NULL is NaN (a moving
  average before its window is full).
- **Volumes** are ``int64``.
- **Timestamps** are tz-aware UTC, ``datetime64[us, UTC]``; NULL is NaT. Convert for display
  with ``.dt.tz_convert("America/New_York")``.
- **Session dates** (and other calendar dates) are tz-naive ``datetime64[us]`` at midnight,
  the New York date of the session. A time series (:func:`prices`, :func:`metrics`) has them as
  its index, a ``DatetimeIndex`` named ``date``, sorted by ``(ticker, date)``, with a
  ``ticker`` column: one ticker's frame plots directly, several split with
  ``groupby("ticker")`` or ``pivot(columns="ticker", values=...)``.
- **Text** is pandas' default string dtype (``str`` in pandas 3, ``object`` in 2.x).
- **Flags** are pandas' nullable ``boolean``.

Ticker symbols are upper-cased and checked (:class:`~quote_pipeline.models.InvalidSymbolError`,
a ``ValueError``); a symbol with no stored rows just has none in the result.

The schema must be at this code's head revision: a reader never migrates, and reading an older
schema (columns missing or still meaning what they meant before a migration, such as
``daily_prices.price_basis``) or a newer one would give wrong answers quietly, so
:class:`SchemaNotCurrentError` says to run ``quote-pipeline db upgrade`` (or to upgrade this
package) instead. A database that cannot be reached raises :class:`DatabaseUnavailableError`
naming it without its password.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from quote_pipeline.analytics import METRIC_COLUMNS
from quote_pipeline.models import normalize_symbols
from quote_pipeline.storage.adjusted_prices import read_adjusted_prices
from quote_pipeline.storage.corporate_actions import read_profiles
from quote_pipeline.storage.database import (
    create_db_engine,
    database_error_line,
    display_url,
    resolve_database_url,
)
from quote_pipeline.storage.history import read_daily_prices
from quote_pipeline.storage.metrics import read_daily_metrics
from quote_pipeline.storage.news import read_news
from quote_pipeline.storage.schema import company_profiles, metadata, stocks
from quote_pipeline.storage.schema_migrations import (
    SchemaMigrationError,
    current_revision,
    head_revision,
    known_revisions,
)

__all__ = [
    "BOOLEAN",
    "DATE",
    "EXACT",
    "FLOAT64",
    "INT64",
    "READ_COLUMNS",
    "READ_INDEX",
    "READ_SOURCES",
    "TEXT",
    "UTC_TIMESTAMP",
    "DatabaseUnavailableError",
    "SchemaNotCurrentError",
    "latest_quotes",
    "metrics",
    "news",
    "prices",
    "profiles",
]

# --- the column contracts ------------------------------------------------------------------

# The dtype of a column, as READ_COLUMNS names it.
EXACT = "exact"  # object: Decimal (exact="decimal") or str (exact="str"); None where NULL
FLOAT64 = "float64"  # NaN where NULL
INT64 = "int64"  # never NULL
UTC_TIMESTAMP = "datetime64[us, UTC]"  # NaT where NULL
DATE = "datetime64[us]"  # tz-naive midnight of a (New York) calendar date; NaT where NULL
TEXT = "str"  # pandas' default string dtype; NaN/None where NULL
BOOLEAN = "boolean"  # pandas' nullable boolean; <NA> where NULL

# Each reader's columns, in order: (name, dtype, source table.column). The index, where there
# is one, is the first (READ_INDEX). The one literal that READ_COLUMNS, READ_SOURCES and the
# functions' docstrings come from.
_METRICS_SPEC = tuple((name, FLOAT64, f"daily_metrics.{name}") for name in METRIC_COLUMNS)
_SPEC: dict[str, tuple[tuple[str, str, str], ...]] = {
    "latest_quotes": (
        ("ticker", TEXT, "stocks.ticker"),
        ("price", EXACT, "stocks.price"),
        ("volume", INT64, "stocks.volume"),
        ("change", EXACT, "stocks.change"),
        ("quoted_at", UTC_TIMESTAMP, "stocks.quoted_at"),
        ("updated_at", UTC_TIMESTAMP, "stocks.updated_at"),
        ("source", TEXT, "stocks.source"),
        ("company_name", TEXT, "company_profiles.company_name"),
    ),
    "prices": (
        ("date", DATE, "daily_prices_adjusted.date"),
        ("ticker", TEXT, "daily_prices_adjusted.ticker"),
        ("adj_open", EXACT, "daily_prices_adjusted.adj_open"),
        ("adj_high", EXACT, "daily_prices_adjusted.adj_high"),
        ("adj_low", EXACT, "daily_prices_adjusted.adj_low"),
        ("adj_close", EXACT, "daily_prices_adjusted.adj_close"),
        ("adj_volume", INT64, "daily_prices_adjusted.adj_volume"),
        ("split_factor", EXACT, "daily_prices_adjusted.split_factor"),
        ("dividend_factor", EXACT, "daily_prices_adjusted.dividend_factor"),
    ),
    "prices(adjusted=False)": (
        ("date", DATE, "daily_prices.date"),
        ("ticker", TEXT, "daily_prices.ticker"),
        ("open", EXACT, "daily_prices.open"),
        ("high", EXACT, "daily_prices.high"),
        ("low", EXACT, "daily_prices.low"),
        ("close", EXACT, "daily_prices.close"),
        ("volume", INT64, "daily_prices.volume"),
        ("change", EXACT, "daily_prices.change"),
        ("change_percent", EXACT, "daily_prices.change_percent"),
        ("vwap", EXACT, "daily_prices.vwap"),
        ("price_basis", TEXT, "daily_prices.price_basis"),
        ("fetched_at", UTC_TIMESTAMP, "daily_prices.fetched_at"),
        ("source", TEXT, "daily_prices.source"),
    ),
    "metrics": (
        ("date", DATE, "daily_metrics.date"),
        ("ticker", TEXT, "daily_metrics.ticker"),
        *_METRICS_SPEC,
    ),
    "profiles": (
        ("ticker", TEXT, "company_profiles.ticker"),
        ("company_name", TEXT, "company_profiles.company_name"),
        ("exchange", TEXT, "company_profiles.exchange"),
        ("exchange_full_name", TEXT, "company_profiles.exchange_full_name"),
        ("currency", TEXT, "company_profiles.currency"),
        ("country", TEXT, "company_profiles.country"),
        ("sector", TEXT, "company_profiles.sector"),
        ("industry", TEXT, "company_profiles.industry"),
        ("market_cap", EXACT, "company_profiles.market_cap"),
        ("is_etf", BOOLEAN, "company_profiles.is_etf"),
        ("is_fund", BOOLEAN, "company_profiles.is_fund"),
        ("is_adr", BOOLEAN, "company_profiles.is_adr"),
        ("is_actively_trading", BOOLEAN, "company_profiles.is_actively_trading"),
        ("ipo_date", DATE, "company_profiles.ipo_date"),
        ("cik", TEXT, "company_profiles.cik"),
        ("isin", TEXT, "company_profiles.isin"),
        ("cusip", TEXT, "company_profiles.cusip"),
        ("website", TEXT, "company_profiles.website"),
        ("description", TEXT, "company_profiles.description"),
        ("status", TEXT, "company_profiles.status"),
        ("missing_since", UTC_TIMESTAMP, "company_profiles.missing_since"),
        ("fetched_at", UTC_TIMESTAMP, "company_profiles.fetched_at"),
    ),
    "news": (
        ("published_at", UTC_TIMESTAMP, "news_articles.published_at"),
        ("title", TEXT, "news_articles.title"),
        ("publisher", TEXT, "news_articles.publisher"),
        ("sentiment", FLOAT64, "news_articles.sentiment"),
        ("sentiment_label", TEXT, "news_articles.sentiment_label"),
        ("url", TEXT, "news_articles.url"),
    ),
}

READ_COLUMNS: dict[str, dict[str, str]] = {
    reader: {name: dtype for name, dtype, _ in columns} for reader, columns in _SPEC.items()
}
"""Reader -> column -> dtype (one of EXACT, FLOAT64, INT64, UTC_TIMESTAMP, DATE, TEXT,
BOOLEAN), the index included, in the frame's order. Readers: ``latest_quotes``, ``prices``
(adjusted, the default), ``prices(adjusted=False)``, ``metrics``, ``profiles``, ``news``."""

READ_SOURCES: dict[str, dict[str, str]] = {
    reader: {name: source for name, _, source in columns} for reader, columns in _SPEC.items()
}
"""Reader -> column -> the ``table.column`` it is read from."""

READ_INDEX: dict[str, str | None] = {
    "latest_quotes": "ticker",
    "prices": "date",
    "prices(adjusted=False)": "date",
    "metrics": "date",
    "profiles": "ticker",
    "news": None,  # a RangeIndex, newest article first
}
"""Reader -> the column that is the frame's index (None: a plain RangeIndex)."""

Exact = Literal["decimal", "str"]
Tickers = str | Iterable[str]
Day = date | datetime | str | pd.Timestamp


# --- errors --------------------------------------------------------------------------------


class DatabaseUnavailableError(ConnectionError):
    """The database cannot be reached or opened. The message names it without a password."""


class SchemaNotCurrentError(SchemaMigrationError):
    """The database's schema is not at this code's head revision (a reader never migrates):
    run ``quote-pipeline db upgrade``, or upgrade quote_pipeline if the database is newer."""


# --- readers -------------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., pd.DataFrame])


def _documented(*readers: str) -> Callable[[_F], _F]:
    """Put the readers' column lists (READ_COLUMNS, with the schema's column comments) in
    place of ``{columns}`` in the function's docstring."""

    def decorate(function: _F) -> _F:
        if function.__doc__:
            function.__doc__ = function.__doc__.replace("{columns}", _columns_doc(readers))
        return function

    return decorate


def _columns_doc(readers: Sequence[str]) -> str:
    lines: list[str] = []
    for reader in readers:
        lines.append(f'Columns (``READ_COLUMNS["{reader}"]``):')
        lines.append("")
        for name, dtype in READ_COLUMNS[reader].items():
            table, column = READ_SOURCES[reader][name].split(".")
            comment = metadata.tables[table].c[column].comment or ""
            role = " (index)" if READ_INDEX[reader] == name else ""
            lines.append(f"- ``{name}``{role}: {dtype}, from {table}.{column}. {comment}".rstrip())
        lines.append("")
    return "\n".join(f"    {line}" if line else "" for line in lines).strip()


@_documented("latest_quotes")
def latest_quotes(
    tickers: Tickers | None = None,
    *,
    exact: Exact = "decimal",
    database_url: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """The latest quote of each ticker (the ``stocks`` table), all of them or those of
    ``tickers``, indexed by ticker (sorted), with the provider that served it (``source``:
    ``fmp`` or ``massive``) and the company's name from ``company_profiles`` where it has a
    profile (else missing).

    {columns}
    """
    symbols = _symbols(tickers) if tickers is not None else None
    _check_exact(exact)
    s, p = stocks.c, company_profiles.c
    query = (
        sa.select(
            s.ticker,
            s.price,
            s.volume,
            s.change,
            s.quoted_at,
            s.updated_at,
            s.source,
            p.company_name,
        )
        .select_from(stocks.outerjoin(company_profiles, p.ticker == s.ticker))
        .order_by(s.ticker)
    )
    if symbols is not None:
        query = query.where(s.ticker.in_(symbols))
    with _database(database_url, engine) as bind, bind.connect() as conn:
        rows = [row._mapping for row in conn.execute(query)]
    return _frame("latest_quotes", _columns_of(rows, READ_COLUMNS["latest_quotes"]), exact)


@_documented("prices", "prices(adjusted=False)")
def prices(
    tickers: Tickers,
    start: Day | None = None,
    end: Day | None = None,
    adjusted: bool = True,
    *,
    exact: Exact = "decimal",
    database_url: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Daily OHLCV of one ticker (a string) or several, sessions ``start`` to ``end``
    (inclusive; dates, datetimes or ISO strings; None: from the first / to the last stored).

    ``adjusted=True`` (default): ``daily_prices_adjusted``, split- and dividend-adjusted
    (CRSP-style backward adjustment: a later split divides earlier prices and multiplies their
    volume), the series to chart or compute returns from. ``adjusted=False``: ``daily_prices``
    as traded that day (``price_basis`` says ``as_traded``, or ``split_adjusted`` for rows
    fetched before revision 0004), each with the provider that served it (``source``: ``fmp``
    or ``massive``).

    The index is a ``DatetimeIndex`` named ``date`` (the session's New York date, tz-naive),
    sorted by ``(ticker, date)``; with several tickers a date repeats once per ticker.

    {columns}
    """
    symbols = _symbols(tickers)
    _check_exact(exact)
    first, last = _day(start), _day(end)
    with _database(database_url, engine) as bind:
        if adjusted:
            adjusted_rows = read_adjusted_prices(bind, symbols, first, last)
            columns = _columns_of(adjusted_rows, READ_COLUMNS["prices"], date="day")
            return _frame("prices", columns, exact)
        bars = read_daily_prices(bind, symbols, first, last)
    columns = _columns_of(bars, READ_COLUMNS["prices(adjusted=False)"], ticker="symbol", date="day")
    return _frame("prices(adjusted=False)", columns, exact)


@_documented("metrics")
def metrics(
    tickers: Tickers,
    start: Day | None = None,
    end: Day | None = None,
    *,
    database_url: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """The research statistics of ``daily_metrics`` (returns, moving averages, MACD,
    volatility, RSI, drawdown, 52-week range: :data:`quote_pipeline.analytics.METRIC_COLUMNS`)
    of one ticker or several, sessions ``start`` to ``end`` (inclusive). Statistics, not
    prices: ``float64``, NaN until a window has enough sessions (``sma_50`` on the first 49).

    The index is a ``DatetimeIndex`` named ``date``, sorted by ``(ticker, date)``, like
    :func:`prices`, so ``prices(t).join(metrics(t).drop(columns="ticker"))`` lines them up.

    {columns}
    """
    symbols = _symbols(tickers)
    first, last = _day(start), _day(end)
    with _database(database_url, engine) as bind:
        stored = read_daily_metrics(bind, symbols, first, last)
    return _frame("metrics", {name: stored[name].tolist() for name in stored.columns}, "decimal")


@_documented("profiles")
def profiles(
    tickers: Tickers | None = None,
    *,
    exact: Exact = "decimal",
    database_url: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Company profiles (``company_profiles``), all or those of ``tickers``, indexed by ticker
    (sorted). A profile is never deleted: ``status`` says ``active``, ``not_trading`` or
    ``gone`` (``missing_since`` then says since when). ``market_cap`` is exact.

    {columns}
    """
    symbols = _symbols(tickers) if tickers is not None else None
    _check_exact(exact)
    with _database(database_url, engine) as bind:
        rows = read_profiles(bind, symbols)
    return _frame("profiles", _columns_of(rows, READ_COLUMNS["profiles"]), exact)


@_documented("news")
def news(
    ticker: str,
    days: float = 7,
    *,
    database_url: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """The news articles about ``ticker`` published in the last ``days`` days (from now),
    newest first (then by url), with their sentiment: VADER's compound score in [-1, 1]
    (``float64``) and its label (``positive`` >= 0.05, ``negative`` <= -0.05, else
    ``neutral``). A plain RangeIndex.

    {columns}
    """
    if not isinstance(ticker, str):
        raise TypeError(f"news() takes one ticker symbol, not {type(ticker).__name__}")
    (symbol,) = _symbols([ticker])
    if days < 0:
        raise ValueError(f"days must be >= 0, not {days!r}")
    since = datetime.now(UTC) - timedelta(days=days)
    with _database(database_url, engine) as bind:
        rows = read_news(bind, symbol, since=since)
    return _frame("news", _columns_of(rows, READ_COLUMNS["news"]), "decimal")


# --- the database --------------------------------------------------------------------------


@contextmanager
def _database(database_url: str | None, engine: Engine | None) -> Iterator[Engine]:
    """An engine on the database to read, its schema checked to be at the head: the caller's
    ``engine`` (left open), or a new one for ``database_url`` (disposed after)."""
    if engine is not None:
        if database_url is not None:
            raise TypeError("pass database_url or engine, not both")
        _check_schema(engine)
        yield engine
        return
    url = resolve_database_url(database_url)
    _require_sqlite_file(url)
    new = create_db_engine(url, upgrade=False)  # never migrates (DatabaseUrlError if unusable)
    try:
        _check_schema(new)
        yield new
    finally:
        new.dispose()


def _require_sqlite_file(url: str) -> None:
    """A SQLite file that does not exist is not a database to read (connecting would create
    an empty one)."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        return  # create_db_engine reports it without quoting the URL
    if parsed.get_backend_name() != "sqlite" or parsed.query.get("uri"):
        return
    if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).exists():
        raise DatabaseUnavailableError(
            f"no database at {display_url(parsed)}: the file does not exist (run the pipeline, "
            "or `quote-pipeline db upgrade`, to create it)"
        )


def _check_schema(engine: Engine) -> None:
    where = display_url(engine.url)
    try:
        revision = current_revision(engine)
    except sa.exc.DBAPIError as exc:  # unreachable, refused, no permission: all one line
        raise DatabaseUnavailableError(
            f"cannot read the database {where}: {database_error_line(exc, engine.url)}"
        ) from None
    head = head_revision()
    if revision == head:
        return
    if revision is None:
        problem = "has no quote_pipeline schema yet"
        fix = "run `quote-pipeline db upgrade` (or the pipeline) first"
    elif revision not in known_revisions():
        problem = f"is at revision {revision}, newer than this quote_pipeline (head {head})"
        fix = "upgrade the quote_pipeline package"
    else:
        problem = f"is at revision {revision}, behind this code's head {head}"
        fix = "run `quote-pipeline db upgrade`"
    raise SchemaNotCurrentError(f"the database {where} {problem}: {fix}")


# --- arguments -----------------------------------------------------------------------------


def _symbols(tickers: Tickers) -> list[str]:
    """Upper-cased, checked symbols (InvalidSymbolError names every invalid one)."""
    if isinstance(tickers, str):
        tickers = [tickers]
    return normalize_symbols(tickers)


def _check_exact(exact: str) -> None:
    if exact not in ("decimal", "str"):
        raise ValueError(f"exact must be 'decimal' or 'str', not {exact!r}")


def _day(value: Day | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


# --- frames --------------------------------------------------------------------------------


def _columns_of(
    rows: Sequence[Any], columns: Mapping[str, str], **attributes: str
) -> dict[str, list[Any]]:
    """``rows`` (mappings, or objects with attributes — ``attributes`` renames: column=attr)
    as column -> values."""
    if rows and isinstance(rows[0], Mapping):
        return {name: [row[name] for row in rows] for name in columns}
    return {name: [getattr(row, attributes.get(name, name)) for row in rows] for name in columns}


def _frame(reader: str, values: Mapping[str, Sequence[Any]], exact: Exact) -> pd.DataFrame:
    """The reader's frame: its columns in READ_COLUMNS order and dtypes, its index set."""
    frame = pd.DataFrame(
        {name: _series(values[name], dtype, exact) for name, dtype in READ_COLUMNS[reader].items()}
    )
    index = READ_INDEX[reader]
    return frame.set_index(index) if index is not None else frame


def _series(values: Sequence[Any], dtype: str, exact: Exact) -> pd.Series:
    if dtype == EXACT:
        if exact == "str":
            values = [None if v is None else _exact_text(v) for v in values]
        return pd.Series(values, dtype=object)
    if dtype == UTC_TIMESTAMP:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True).dt.as_unit("us")
    if dtype == DATE:
        return pd.Series(pd.to_datetime(list(values)).as_unit("us"))
    return pd.Series(values, dtype=str if dtype == TEXT else dtype)


def _exact_text(value: Decimal) -> str:
    """The decimal's exact digits in positional notation: Decimal("1E-8") -> "0.00000001"."""
    return format(value, "f")
