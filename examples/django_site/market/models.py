"""Unmanaged models over the tables the pipeline writes (``quote_pipeline/storage/schema.py``).

``managed = False`` everywhere: the pipeline's migrations own these tables, Django never
creates, alters or migrates them. The columns mirror the schema one for one (a test compares
them with the live tables); exact prices are :class:`~market.fields.ExactDecimalField`,
timestamps are UTC (aware with ``USE_TZ``), statistics are floats.
"""

from __future__ import annotations

from django.db import models

from market.fields import ExactDecimalField
from quote_pipeline.models import MAX_SYMBOL_LENGTH as SYMBOL_LENGTH
from quote_pipeline.storage.schema import URL_LENGTH


class TrackedTicker(models.Model):
    """The tracked universe (``tickers``): what the refresh asks the API for."""

    ticker = models.CharField(max_length=SYMBOL_LENGTH, primary_key=True)
    added_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "tickers"
        ordering = ("ticker",)

    def __str__(self) -> str:
        return self.ticker


class Stock(models.Model):
    """The latest quote of each ticker (``stocks``) — the seed's ``Stock(ticker, price,
    volume)``, now written by the pipeline's ``stocks`` asset."""

    ticker = models.CharField(max_length=SYMBOL_LENGTH, primary_key=True)
    price = ExactDecimalField()
    volume = models.BigIntegerField()
    change = ExactDecimalField(null=True)
    quoted_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    source = models.CharField(max_length=16)  # the provider that served it: fmp, massive

    class Meta:
        managed = False
        db_table = "stocks"
        ordering = ("ticker",)

    def __str__(self) -> str:
        return f"{self.ticker} {self.price}"


class QuoteSnapshot(models.Model):
    """Every quote ever written (``quote_snapshots``), one per ticker and quote time."""

    # The table has no key column: (ticker, quoted_at) is unique, which is what Django needs.
    pk = models.CompositePrimaryKey("ticker", "quoted_at")
    ticker = models.CharField(max_length=SYMBOL_LENGTH)
    price = ExactDecimalField()
    volume = models.BigIntegerField()
    quoted_at = models.DateTimeField()
    fetched_at = models.DateTimeField()
    source = models.CharField(max_length=16)  # the provider that served it: fmp, massive

    class Meta:
        managed = False
        db_table = "quote_snapshots"
        ordering = ("ticker", "quoted_at")


class DailyPriceAdjusted(models.Model):
    """Split- and dividend-adjusted daily OHLCV (``daily_prices_adjusted``)."""

    pk = models.CompositePrimaryKey("ticker", "date")
    ticker = models.CharField(max_length=SYMBOL_LENGTH)
    date = models.DateField()
    adj_open = ExactDecimalField()
    adj_high = ExactDecimalField()
    adj_low = ExactDecimalField()
    adj_close = ExactDecimalField()
    adj_volume = models.BigIntegerField()
    split_factor = ExactDecimalField()
    dividend_factor = ExactDecimalField()
    raw_fetched_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "daily_prices_adjusted"
        ordering = ("ticker", "date")


class DailyMetric(models.Model):
    """Daily statistics per ticker and session (``daily_metrics``): floats, NULL until a
    window has enough sessions."""

    pk = models.CompositePrimaryKey("ticker", "date")
    ticker = models.CharField(max_length=SYMBOL_LENGTH)
    date = models.DateField()
    return_1d = models.FloatField(null=True)
    log_return_1d = models.FloatField(null=True)
    sma_20 = models.FloatField(null=True)
    sma_50 = models.FloatField(null=True)
    sma_200 = models.FloatField(null=True)
    ema_12 = models.FloatField(null=True)
    ema_26 = models.FloatField(null=True)
    macd = models.FloatField(null=True)
    macd_signal = models.FloatField(null=True)
    volatility_20 = models.FloatField(null=True)
    rsi_14 = models.FloatField(null=True)
    drawdown = models.FloatField(null=True)
    high_52w = models.FloatField(null=True)
    low_52w = models.FloatField(null=True)
    rsi_avg_gain = models.FloatField(null=True)
    rsi_avg_loss = models.FloatField(null=True)
    peak_close = models.FloatField(null=True)
    adjusted_fetched_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "daily_metrics"
        ordering = ("ticker", "date")


class CompanyProfile(models.Model):
    """What each tracked company is (``company_profiles``); rows are flagged, never deleted."""

    ticker = models.CharField(max_length=SYMBOL_LENGTH, primary_key=True)
    company_name = models.TextField(null=True)
    exchange = models.CharField(max_length=32, null=True)
    exchange_full_name = models.TextField(null=True)
    currency = models.CharField(max_length=8, null=True)
    country = models.CharField(max_length=8, null=True)
    sector = models.TextField(null=True)
    industry = models.TextField(null=True)
    market_cap = ExactDecimalField(null=True)
    is_etf = models.BooleanField(null=True)
    is_fund = models.BooleanField(null=True)
    is_adr = models.BooleanField(null=True)
    is_actively_trading = models.BooleanField(null=True)
    ipo_date = models.DateField(null=True)
    cik = models.CharField(max_length=16, null=True)
    isin = models.CharField(max_length=16, null=True)
    cusip = models.CharField(max_length=16, null=True)
    website = models.TextField(null=True)
    description = models.TextField(null=True)
    status = models.CharField(max_length=16)
    missing_since = models.DateTimeField(null=True)
    fetched_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "company_profiles"
        ordering = ("ticker",)

    def __str__(self) -> str:
        return f"{self.ticker} {self.company_name or ''}".strip()


class NewsArticle(models.Model):
    """A stock news article (``news_articles``) with the sentiment of its text."""

    url = models.CharField(max_length=URL_LENGTH, primary_key=True)
    published_at = models.DateTimeField()
    publisher = models.TextField(null=True)
    site = models.TextField(null=True)
    title = models.TextField()
    text = models.TextField(null=True)
    image = models.TextField(null=True)
    fetched_at = models.DateTimeField()
    sentiment = models.FloatField()
    sentiment_label = models.CharField(max_length=8)

    class Meta:
        managed = False
        db_table = "news_articles"
        ordering = ("-published_at",)

    def __str__(self) -> str:
        return self.title


class NewsArticleTicker(models.Model):
    """Which tickers an article is about (``news_article_tickers``)."""

    pk = models.CompositePrimaryKey("article_id", "ticker")
    article = models.ForeignKey(
        NewsArticle,
        db_column="url",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="ticker_links",
    )
    ticker = models.CharField(max_length=SYMBOL_LENGTH)

    class Meta:
        managed = False
        db_table = "news_article_tickers"
