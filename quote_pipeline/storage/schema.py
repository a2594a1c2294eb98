"""The project's tables, in SQLAlchemy Core."""

from __future__ import annotations

import sqlalchemy as sa

from quote_pipeline.models import MAX_SYMBOL_LENGTH
from quote_pipeline.storage.types import ExactDecimal, UTCDateTime

metadata = sa.MetaData()

TICKER = "Exchange symbol, upper case."

# Which market-data provider served a row (revision 0006): rows stored before it, and
# writers that name none, are FMP's.
DEFAULT_SOURCE = "fmp"
SOURCE_COMMENT = (
    "The provider that served the row: fmp or massive (Massive, formerly Polygon.io). "
    "Rows written before revision 0006 are fmp, the only provider then."
)


def source_column() -> sa.Column[str]:
    """``source``: NOT NULL, defaulting to fmp on the server, so a writer that predates it
    (and names no source) still works and labels its rows with the one provider it knew."""
    return sa.Column(
        "source",
        sa.String(16),
        nullable=False,
        server_default=DEFAULT_SOURCE,
        comment=SOURCE_COMMENT,
    )


tickers = sa.Table(
    "tickers",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("added_at", UTCDateTime(), nullable=False, comment="When it was added (UTC)."),
    comment="The tracked universe: every symbol the quote refresh asks the API for.",
)

stocks = sa.Table(
    "stocks",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("price", ExactDecimal(), nullable=False, comment="Last price, exact decimal."),
    sa.Column("volume", sa.BigInteger(), nullable=False, comment="Day volume (64-bit)."),
    sa.Column("change", ExactDecimal(), nullable=True, comment="Change since previous close."),
    sa.Column("quoted_at", UTCDateTime(), nullable=False, comment="Quote time (UTC)."),
    sa.Column("updated_at", UTCDateTime(), nullable=False, comment="When this row was written."),
    source_column(),
    comment="The latest quote of each ticker.",
)

quote_snapshots = sa.Table(
    "quote_snapshots",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), nullable=False, comment=TICKER),
    sa.Column("price", ExactDecimal(), nullable=False, comment="Exact decimal."),
    sa.Column("volume", sa.BigInteger(), nullable=False, comment="Day volume (64-bit)."),
    sa.Column("quoted_at", UTCDateTime(), nullable=False, comment="Quote time (UTC)."),
    sa.Column("fetched_at", UTCDateTime(), nullable=False, comment="When the API answered."),
    source_column(),
    # One observation per ticker and quote time: re-running a write adds nothing.
    sa.UniqueConstraint("ticker", "quoted_at", name="uq_quote_snapshots_ticker_quoted_at"),
    comment="Every quote ever written, append-only.",
)

daily_prices = sa.Table(
    "daily_prices",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
    sa.Column("open", ExactDecimal(), nullable=False, comment="Exact decimal, as the API sent it."),
    sa.Column("high", ExactDecimal(), nullable=False),
    sa.Column("low", ExactDecimal(), nullable=False),
    sa.Column("close", ExactDecimal(), nullable=False),
    sa.Column("volume", sa.BigInteger(), nullable=False, comment="Shares (64-bit)."),
    sa.Column("change", ExactDecimal(), nullable=True, comment="Where the API gives it."),
    sa.Column("change_percent", ExactDecimal(), nullable=True, comment="Where the API gives it."),
    sa.Column("vwap", ExactDecimal(), nullable=True, comment="Where the API gives it."),
    sa.Column("fetched_at", UTCDateTime(), nullable=False, comment="When the API answered."),
    sa.Column(
        "price_basis",
        sa.String(16),
        nullable=False,
        comment="as_traded: prices and volume as traded that day (never change later); "
        "split_adjusted: fetched before revision 0004 from /full, split-adjusted as of "
        "fetched_at (re-based in daily_prices_adjusted, replaced by the next fetch of its range).",
    ),
    source_column(),
    comment="End-of-day OHLCV per ticker and NYSE session, as traded (the daily_prices asset).",
)

intraday_bars = sa.Table(
    "intraday_bars",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("bar_start", UTCDateTime(), primary_key=True, comment="Bar start, UTC."),
    sa.Column("open", ExactDecimal(), nullable=False),
    sa.Column("high", ExactDecimal(), nullable=False),
    sa.Column("low", ExactDecimal(), nullable=False),
    sa.Column("close", ExactDecimal(), nullable=False),
    sa.Column("volume", sa.BigInteger(), nullable=False),
    sa.Column(
        "fetched_at",
        UTCDateTime(),
        nullable=False,
        comment="Last fetch (the bar still forming then is rewritten by the next refresh).",
    ),
    comment="5-minute OHLCV bars per ticker (the intraday_bars asset).",
)

api_calls = sa.Table(
    "api_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    # A hash of the API base URL and key: the account, never the key itself.
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("sent_at", sa.Float(), nullable=False, comment="Epoch seconds."),
    sa.Index("ix_api_calls_account_sent_at", "account", "sent_at"),
    comment="Calls in the current rate-limit window per API account, shared by all processes.",
)

symbol_retries = sa.Table(
    "symbol_retries",
    metadata,
    sa.Column("dataset", sa.String(32), primary_key=True, comment="quotes, daily_prices, …"),
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True),
    sa.Column("failure_kind", sa.String(32), nullable=False, comment="Last failure's kind."),
    sa.Column("last_error", sa.String(500), nullable=False, comment="Last failure's message."),
    sa.Column("attempts", sa.Integer(), nullable=False, comment="Requests that failed."),
    sa.Column("runs", sa.Integer(), nullable=False, comment="Runs in which it failed."),
    sa.Column("first_failed_at", UTCDateTime(), nullable=False),
    sa.Column("last_failed_at", UTCDateTime(), nullable=False),
    sa.Column(
        "next_attempt_at",
        UTCDateTime(),
        nullable=True,
        comment="When it is asked again alone; NULL once given up.",
    ),
    sa.Column("status", sa.String(16), nullable=False, comment="pending or given_up."),
    comment="Symbols still failing transiently after a run's retry budget: asked again alone, "
    "with back-off, until they succeed or the give-up time passes.",
)

api_quota_state = sa.Table(
    "api_quota_state",
    metadata,
    # A hash of the API base URL and key: the account, never the key itself.
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("exhausted_at", UTCDateTime(), nullable=False),
    sa.Column("hold_until", UTCDateTime(), nullable=False, comment="No request before this."),
    sa.Column("reason", sa.String(500), nullable=False),
    comment="An API account whose quota ran out: runs make no request until hold_until; the "
    "first successful call after it clears the row.",
)

# --- stock news with sentiment (storage/news.py) ---------------------------------------------

# PostgreSQL's btree refuses index entries over ~2700 bytes: 2048 characters of URL leave room
# (URLs are ASCII) and are longer than any article link the news API returns.
URL_LENGTH = 2048

news_articles = sa.Table(
    "news_articles",
    metadata,
    sa.Column("url", sa.String(URL_LENGTH), primary_key=True, comment="The article's link."),
    sa.Column("published_at", UTCDateTime(), nullable=False, comment="Publication time (UTC)."),
    sa.Column("publisher", sa.Text(), nullable=True, comment="Publisher, as the API names it."),
    sa.Column("site", sa.Text(), nullable=True, comment="Web site it appeared on."),
    sa.Column("title", sa.Text(), nullable=False, comment="Headline."),
    sa.Column("text", sa.Text(), nullable=True, comment="Summary or text, as the API sent it."),
    sa.Column("image", sa.Text(), nullable=True, comment="Image link."),
    sa.Column(
        "fetched_at",
        UTCDateTime(),
        nullable=False,
        comment="When it was first fetched (a re-fetch keeps it).",
    ),
    sa.Column(
        "sentiment",
        sa.Float(),
        nullable=False,
        comment="VADER compound score in [-1, 1]: a statistic, a float on purpose.",
    ),
    sa.Column(
        "sentiment_label",
        sa.String(8),
        nullable=False,
        comment="positive, negative or neutral.",
    ),
    sa.Index("ix_news_articles_published_at", "published_at"),
    comment="Stock news articles, one row per link, with the sentiment of their text.",
)

news_article_tickers = sa.Table(
    "news_article_tickers",
    metadata,
    sa.Column(
        "url",
        sa.String(URL_LENGTH),
        sa.ForeignKey("news_articles.url", ondelete="CASCADE", name="fk_news_article_tickers_url"),
        primary_key=True,
        comment="The article's link.",
    ),
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Index("ix_news_article_tickers_ticker_url", "ticker", "url"),
    comment="Which tickers each news article is about (an article may be about several).",
)

daily_sentiment = sa.Table(
    "daily_sentiment",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column(
        "day", sa.Date(), primary_key=True, comment="New York date of the articles' publication."
    ),
    sa.Column("articles", sa.Integer(), nullable=False, comment="Articles that day."),
    sa.Column(
        "mean_sentiment",
        sa.Float(),
        nullable=False,
        comment="Mean VADER compound score of those articles, in [-1, 1].",
    ),
    sa.Column("positive", sa.Integer(), nullable=False, comment="Articles labelled positive."),
    sa.Column("negative", sa.Integer(), nullable=False, comment="Articles labelled negative."),
    sa.Column("neutral", sa.Integer(), nullable=False, comment="Articles labelled neutral."),
    sa.Column("updated_at", UTCDateTime(), nullable=False, comment="When this row was computed."),
    comment="News sentiment per ticker and New York day, recomputed from news_articles.",
)

# --- reference data and corporate actions (storage/corporate_actions.py) ------------------------

company_profiles = sa.Table(
    "company_profiles",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("company_name", sa.Text(), nullable=True),
    sa.Column("exchange", sa.String(32), nullable=True, comment="Exchange short name (NASDAQ)."),
    sa.Column("exchange_full_name", sa.Text(), nullable=True),
    sa.Column("currency", sa.String(8), nullable=True, comment="Trading currency (ISO 4217)."),
    sa.Column("country", sa.String(8), nullable=True),
    sa.Column("sector", sa.Text(), nullable=True),
    sa.Column("industry", sa.Text(), nullable=True),
    sa.Column("market_cap", ExactDecimal(), nullable=True, comment="Exact, in `currency`."),
    sa.Column("is_etf", sa.Boolean(), nullable=True),
    sa.Column("is_fund", sa.Boolean(), nullable=True),
    sa.Column("is_adr", sa.Boolean(), nullable=True),
    sa.Column(
        "is_actively_trading", sa.Boolean(), nullable=True, comment="As the API last said it."
    ),
    sa.Column("ipo_date", sa.Date(), nullable=True),
    sa.Column("cik", sa.String(16), nullable=True, comment="SEC CIK, zero-padded text."),
    sa.Column("isin", sa.String(16), nullable=True),
    sa.Column("cusip", sa.String(16), nullable=True),
    sa.Column("website", sa.Text(), nullable=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column(
        "status",
        sa.String(16),
        nullable=False,
        comment="active; not_trading (the API says isActivelyTrading false); gone (the API "
        "stopped answering with a profile). Rows are flagged, never deleted.",
    ),
    sa.Column(
        "missing_since",
        UTCDateTime(),
        nullable=True,
        comment="First refresh that got no profile (status gone); NULL while answered.",
    ),
    sa.Column("fetched_at", UTCDateTime(), nullable=False, comment="When the API last answered."),
    comment="What each tracked company is: name, exchange, sector, identifiers (the "
    "company_profiles asset).",
)

stock_splits = sa.Table(
    "stock_splits",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("ex_date", sa.Date(), primary_key=True, comment="First day traded on the new basis."),
    sa.Column("numerator", ExactDecimal(), nullable=False, comment="New shares (4 in 4:1)."),
    sa.Column("denominator", ExactDecimal(), nullable=False, comment="Old shares (1 in 4:1)."),
    sa.Column("split_type", sa.String(32), nullable=True, comment="As the API names it."),
    sa.Column("fetched_at", UTCDateTime(), nullable=False, comment="When the API last listed it."),
    comment="Stock splits per ticker; a reverse split has numerator < denominator.",
)

dividends = sa.Table(
    "dividends",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("ex_date", sa.Date(), primary_key=True, comment="Ex-dividend date."),
    sa.Column("dividend", ExactDecimal(), nullable=False, comment="Per share, as declared."),
    sa.Column("adj_dividend", ExactDecimal(), nullable=True, comment="Split-adjusted by the API."),
    sa.Column("record_date", sa.Date(), nullable=True),
    sa.Column("payment_date", sa.Date(), nullable=True),
    sa.Column("declaration_date", sa.Date(), nullable=True),
    sa.Column("frequency", sa.String(32), nullable=True, comment="Quarterly, Semi-Annual, …"),
    sa.Column("fetched_at", UTCDateTime(), nullable=False, comment="When the API last listed it."),
    comment="Cash dividends per ticker and ex-date; empty dates from the API are NULL.",
)

daily_prices_adjusted = sa.Table(
    "daily_prices_adjusted",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
    sa.Column("adj_open", ExactDecimal(), nullable=False, comment="Exact, 8 decimal places."),
    sa.Column("adj_high", ExactDecimal(), nullable=False),
    sa.Column("adj_low", ExactDecimal(), nullable=False),
    sa.Column("adj_close", ExactDecimal(), nullable=False),
    sa.Column("adj_volume", sa.BigInteger(), nullable=False, comment="Shares, split-adjusted."),
    sa.Column(
        "split_factor",
        ExactDecimal(),
        nullable=False,
        comment="Product of the ratios of later splits: prices are divided by it.",
    ),
    sa.Column(
        "dividend_factor",
        ExactDecimal(),
        nullable=False,
        comment="Product of (1 - dividend / previous close) of later dividends (12 places).",
    ),
    sa.Column(
        "raw_fetched_at",
        UTCDateTime(),
        nullable=False,
        comment="fetched_at of the daily_prices row it was computed from.",
    ),
    comment="Split- and dividend-adjusted OHLCV (CRSP-style backward adjustment), derived from "
    "daily_prices, stock_splits and dividends without any API call.",
)

price_adjustment_state = sa.Table(
    "price_adjustment_state",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column(
        "actions_fingerprint",
        sa.String(64),
        nullable=False,
        comment="Hash of the splits and dividends the ticker's adjusted rows were computed with.",
    ),
    sa.Column("computed_at", UTCDateTime(), nullable=False, comment="Last full computation."),
    comment="Which corporate actions each ticker's adjusted history reflects: a change "
    "rewrites that ticker's whole adjusted history.",
)

# The statistics of daily_metrics, in the order they are stored (analytics.METRIC_COLUMNS,
# a test ties the two): floats (double precision), NULL until their window has enough
# sessions.
METRIC_COMMENTS: dict[str, str] = {
    "return_1d": "adj_close / previous stored session's adj_close - 1.",
    "log_return_1d": "ln(adj_close / previous stored session's adj_close).",
    "sma_20": "Mean adj_close of the last 20 sessions, including the day.",
    "sma_50": "Mean adj_close of the last 50 sessions, including the day.",
    "sma_200": "Mean adj_close of the last 200 sessions, including the day.",
    "ema_12": "pandas ewm(span=12, adjust=False) of adj_close, from the first stored session.",
    "ema_26": "pandas ewm(span=26, adjust=False) of adj_close, from the first stored session.",
    "macd": "ema_12 - ema_26.",
    "macd_signal": "pandas ewm(span=9, adjust=False) of macd.",
    "volatility_20": "Sample standard deviation (ddof=1) of the last 20 log returns x sqrt(252).",
    "rsi_14": "Wilder's RSI, 0-100 (gains and losses smoothed with ewm(alpha=1/14)).",
    "drawdown": "adj_close / running max adj_close of the stored history - 1 (<= 0).",
    "high_52w": "Highest adj_high of the last 252 sessions (fewer while fewer are stored).",
    "low_52w": "Lowest adj_low of the last 252 sessions (fewer while fewer are stored).",
}
# What an appended day continues from (the recursions' last values), kept on every row so
# that a computation can resume at any day and equal a full one.
METRIC_STATE_COMMENTS: dict[str, str] = {
    "rsi_avg_gain": "Wilder-smoothed average gain (the RSI's state).",
    "rsi_avg_loss": "Wilder-smoothed average loss (the RSI's state).",
    "peak_close": "Running max adj_close up to the day (the drawdown's reference).",
}

daily_metrics = sa.Table(
    "daily_metrics",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column("date", sa.Date(), primary_key=True, comment="NYSE session (New York date)."),
    *(
        sa.Column(name, sa.Double(), nullable=True, comment=comment)
        for name, comment in {**METRIC_COMMENTS, **METRIC_STATE_COMMENTS}.items()
    ),
    sa.Column(
        "adjusted_fetched_at",
        UTCDateTime(),
        nullable=False,
        comment="raw_fetched_at of the daily_prices_adjusted row it was computed from.",
    ),
    comment="Daily statistics per ticker and session from daily_prices_adjusted: returns, "
    "moving averages, MACD, volatility, RSI, drawdown, 52-week range. Floats (statistics, "
    "not prices); NULL until a window has enough sessions.",
)

daily_metrics_state = sa.Table(
    "daily_metrics_state",
    metadata,
    sa.Column("ticker", sa.String(MAX_SYMBOL_LENGTH), primary_key=True, comment=TICKER),
    sa.Column(
        "adjustment_computed_at",
        UTCDateTime(),
        nullable=False,
        comment="price_adjustment_state.computed_at of the adjusted history the metrics "
        "were computed from: when it moves (a re-based history), the ticker is recomputed "
        "in full.",
    ),
    sa.Column(
        "metrics_version",
        sa.Integer(),
        nullable=False,
        comment="analytics.METRICS_VERSION they were computed with: a new version recomputes "
        "the ticker in full.",
    ),
    sa.Column(
        "computed_at", UTCDateTime(), nullable=False, comment="Last computation, full or not."
    ),
    comment="Which adjusted history, and which metric definitions, each ticker's "
    "daily_metrics reflect.",
)
