"""Deterministic simulated stock news for the FMP sandbox (pure functions, no I/O).

Articles are drawn per (symbol, New York date, seed), so any symbol's news for any day is
the same whoever asks, in whatever company. Three kinds exist:

* a symbol's own articles (0-5 on a weekday, at most one on a weekend day);
* shared sector pieces: each symbol belongs to one fixed peer group (a named sector for the
  well-known symbols, a hashed bucket for every other symbol), and a group's piece of the
  day is served once for each symbol it mentions, with one URL and one publishedDate, so a
  multi-symbol query yields one row per (article, symbol) as FMP does;
* market-wide pieces with ``symbol`` null, served only by the "latest" feed, as FMP's
  ``news/stock-latest`` does for about a fifth of its rows.

Titles come from templates whose tone is obvious to a reader; :func:`article_tone` reads
an article's template (and so its expected label) back from its URL, for tests that check
a sentiment scorer against the feed.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

Tone = Literal["positive", "negative", "neutral"]

# FMP's oldest news row seen was 2011-02-24; explicit `from` values reach back this far.
NEWS_START = date(2011, 1, 1)
DEFAULT_LIMIT = 20
MAX_LIMIT = 250
MAX_PAGE = 100
# Without `from`, FMP's news endpoints only look back about three months.
DEFAULT_LOOKBACK_MONTHS = 3
NEWS_HOST = "https://news.example.invalid"
IMAGE_HOST = "https://images.example.invalid/news"

# Same alphabet as the server's symbol check: lower case matches nothing, as on FMP.
_SYMBOL_RE = re.compile(r"^(?=.*[A-Z0-9])[A-Z0-9.\-=^]{1,20}$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")
_URL_TEMPLATE_RE = re.compile(r"-t(\d{2})$")

# Fixed peer groups of well-known symbols; together they are the market-wide feed's universe.
SECTORS: dict[str, tuple[str, ...]] = {
    "Megacap tech": ("AAPL", "MSFT", "GOOGL", "AMZN", "META"),
    "Chip": ("NVDA", "AMD", "INTC", "AVGO", "QCOM", "TXN"),
    "Software": ("ORCL", "CRM", "ADBE", "IBM", "CSCO", "PLTR"),
    "Bank": ("JPM", "BAC", "WFC", "GS", "MS"),
    "Payments": ("V", "MA", "PYPL"),
    "Healthcare": ("LLY", "JNJ", "MRK", "ABBV", "PFE", "AMGN", "UNH"),
    "Energy": ("XOM", "CVX"),
    "Consumer staples": ("PG", "KO", "PEP", "COST", "WMT"),
    "Restaurant and retail": ("HD", "MCD", "SBUX", "NKE"),
    "Media and telecom": ("NFLX", "DIS", "T", "VZ"),
    "Industrial and auto": ("TSLA", "F", "BA", "CAT", "GE", "UBER"),
}
LATEST_SYMBOLS: tuple[str, ...] = tuple(s for members in SECTORS.values() for s in members)
_SECTOR_OF: dict[str, str] = {s: sector for sector, members in SECTORS.items() for s in members}

COMPANY_NAMES: dict[str, str] = {
    "AAPL": "Apple",
    "MSFT": "Microsoft",
    "GOOGL": "Alphabet",
    "AMZN": "Amazon",
    "META": "Meta Platforms",
    "NVDA": "Nvidia",
    "AMD": "AMD",
    "INTC": "Intel",
    "AVGO": "Broadcom",
    "QCOM": "Qualcomm",
    "TXN": "Texas Instruments",
    "ORCL": "Oracle",
    "CRM": "Salesforce",
    "ADBE": "Adobe",
    "IBM": "IBM",
    "CSCO": "Cisco",
    "PLTR": "Palantir",
    "JPM": "JPMorgan Chase",
    "BAC": "Bank of America",
    "WFC": "Wells Fargo",
    "GS": "Goldman Sachs",
    "MS": "Morgan Stanley",
    "V": "Visa",
    "MA": "Mastercard",
    "PYPL": "PayPal",
    "LLY": "Eli Lilly",
    "JNJ": "Johnson & Johnson",
    "MRK": "Merck",
    "ABBV": "AbbVie",
    "PFE": "Pfizer",
    "AMGN": "Amgen",
    "UNH": "UnitedHealth",
    "XOM": "Exxon Mobil",
    "CVX": "Chevron",
    "PG": "Procter & Gamble",
    "KO": "Coca-Cola",
    "PEP": "PepsiCo",
    "COST": "Costco",
    "WMT": "Walmart",
    "HD": "Home Depot",
    "MCD": "McDonald's",
    "SBUX": "Starbucks",
    "NKE": "Nike",
    "NFLX": "Netflix",
    "DIS": "Disney",
    "T": "AT&T",
    "VZ": "Verizon",
    "TSLA": "Tesla",
    "F": "Ford",
    "BA": "Boeing",
    "CAT": "Caterpillar",
    "GE": "GE Aerospace",
    "UBER": "Uber",
}

# Every other symbol falls in one of these buckets; with a universe of ~500 tickers a
# bucket holds 2-4 of them on average, which is what a real sector piece mentions.
_BUCKETS = 150
_BUCKET_SECTORS = (
    "Regional bank",
    "Biotech",
    "Semiconductor equipment",
    "Utility",
    "Homebuilder",
    "Airline",
    "Insurance",
    "Cloud software",
    "Chemical",
    "Real estate",
    "Oil services",
    "Medical device",
    "Trucking",
    "Apparel",
    "Gold miner",
)

PUBLISHERS: tuple[tuple[str, str], ...] = (
    ("Zacks Investment Research", "zacks.com"),
    ("Reuters", "reuters.com"),
    ("Benzinga", "benzinga.com"),
    ("The Motley Fool", "fool.com"),
    ("Seeking Alpha", "seekingalpha.com"),
    ("MarketWatch", "marketwatch.com"),
    ("CNBC", "cnbc.com"),
    ("Invezz", "invezz.com"),
    ("Proactive Investors", "proactiveinvestors.com"),
    ("Business Wire", "businesswire.com"),
)


@dataclass(frozen=True, slots=True)
class _Template:
    tone: Tone
    scope: Literal["symbol", "sector", "bucket", "market"]
    title: str
    text: str


# Placeholders: {name} company, {names} companies joined in prose, {sector}, {pct} a move.
# The index of a template in this tuple is written into each URL (-tNN), so only append.
TEMPLATES: tuple[_Template, ...] = (
    # --- a symbol's own articles ---
    _Template(
        "positive",
        "symbol",
        "{name} beats earnings expectations, shares surge",
        "{name} reported quarterly earnings well above analyst estimates. Revenue grew faster "
        "than expected and margins improved. Shares jumped {pct}% in early trading.",
    ),
    _Template(
        "positive",
        "symbol",
        "{name} raises full-year guidance after strong quarter",
        "{name} lifted its full-year revenue and profit outlook. Management cited robust "
        "demand across its main businesses. Investors cheered the upbeat forecast.",
    ),
    _Template(
        "positive",
        "symbol",
        "{name} upgraded to buy as analysts see strong upside",
        "An analyst upgraded {name} to buy and raised the price target sharply. The note "
        "pointed to accelerating growth and a healthy balance sheet.",
    ),
    _Template(
        "positive",
        "symbol",
        "{name} shares hit record high on booming demand",
        "{name} shares climbed {pct}% to an all-time high. Booming demand for its products "
        "keeps lifting sales and profits.",
    ),
    _Template(
        "positive",
        "symbol",
        "{name} announces big share buyback and dividend increase",
        "{name} unveiled a large share repurchase program and raised its quarterly dividend. "
        "The move signals confidence in strong future cash flows. The stock rose {pct}%.",
    ),
    _Template(
        "positive",
        "symbol",
        "{name} wins major contract, stock jumps",
        "{name} won a lucrative multi-year contract with a large customer. The deal is "
        "expected to boost revenue significantly. The stock rose {pct}% on the news.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} misses revenue estimates and cuts guidance",
        "{name} reported revenue below analyst expectations and lowered its full-year "
        "outlook. Management blamed weaker demand. Shares fell {pct}% after the report.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} shares plunge after downgrade",
        "An analyst downgraded {name} to sell, citing slowing growth and rising costs. The "
        "stock dropped {pct}% on the news.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} faces regulatory probe, stock tumbles",
        "Regulators opened an investigation into {name}'s business practices. The probe could "
        "lead to heavy fines. Shares slid {pct}% in heavy trading.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} announces layoffs as sales slump",
        "{name} will cut thousands of jobs after a sharp drop in sales. The company warned "
        "that conditions may worsen before they improve.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} recalls products over safety defects, shares drop",
        "{name} is recalling products after reports of dangerous defects. The recall will "
        "weigh on earnings this year. Shares fell {pct}%.",
    ),
    _Template(
        "negative",
        "symbol",
        "{name} posts surprise loss, stock sinks",
        "{name} swung to an unexpected quarterly loss. Rising costs and weak demand hurt "
        "results, and the shares sank {pct}%.",
    ),
    _Template(
        "neutral",
        "symbol",
        "{name} to present at investor conference",
        "{name} will present at an upcoming investor conference. A live webcast will be "
        "available on the company's website.",
    ),
    _Template(
        "neutral",
        "symbol",
        "{name} schedules quarterly earnings release date",
        "{name} announced the date on which it will report its quarterly results. The company "
        "will host a conference call for analysts afterwards.",
    ),
    _Template(
        "neutral",
        "symbol",
        "{name} to hold annual shareholder meeting",
        "{name} will hold its annual meeting of shareholders next month. Proxy materials have "
        "been filed with the Securities and Exchange Commission.",
    ),
    _Template(
        "neutral",
        "symbol",
        "{name} appoints new board member",
        "{name} named a new independent director to its board. The appointment takes effect "
        "at the start of next month.",
    ),
    _Template(
        "neutral",
        "symbol",
        "{name} files annual report with the SEC",
        "{name} filed its annual report with the Securities and Exchange Commission. The "
        "filing is available on the company's investor relations website.",
    ),
    _Template(
        "neutral",
        "symbol",
        "What to know about {name} stock this week",
        "Here is a summary of recent filings and announcements from {name}. Trading volume in "
        "the shares has been close to its average.",
    ),
    # --- named sector pieces ({names} are the mentioned symbols' companies) ---
    _Template(
        "positive",
        "sector",
        "{sector} stocks rally as {names} lead the gains",
        "{sector} shares rallied strongly today. {names} posted the biggest gains as "
        "investors bet on rising profits.",
    ),
    _Template(
        "negative",
        "sector",
        "{sector} stocks sell off as {names} slump",
        "{sector} shares fell sharply today. {names} led the declines amid worries about "
        "weak demand and falling profits. Analysts expect more pain ahead.",
    ),
    _Template(
        "neutral",
        "sector",
        "{sector} roundup: {names} in focus this week",
        "This week's {sector} roundup looks at {names}. Several companies in the group report "
        "results in the coming weeks.",
    ),
    # --- hashed-bucket pieces (the members cannot be named without knowing the universe) ---
    _Template(
        "positive",
        "bucket",
        "{sector} stocks surge as investors pile into the group",
        "{sector} shares surged today, with most names in the group gaining {pct}% or more. "
        "Strong results and upbeat forecasts drew buyers.",
    ),
    _Template(
        "negative",
        "bucket",
        "{sector} stocks slump as the outlook darkens",
        "{sector} shares slumped today, many losing {pct}% or more. Weak results and grim "
        "forecasts sent investors heading for the exits.",
    ),
    _Template(
        "neutral",
        "bucket",
        "{sector} stocks: what to watch this week",
        "Here are the {sector} companies with results and events on the calendar this week. "
        "Trading in the group has been close to its average.",
    ),
    # --- market-wide pieces (symbol null; latest feed only) ---
    _Template(
        "positive",
        "market",
        "Stocks rally to record highs as inflation cools",
        "Major stock indexes climbed to record highs today. Cooler inflation data boosted "
        "hopes for lower interest rates.",
    ),
    _Template(
        "negative",
        "market",
        "Stocks tumble as recession fears grow",
        "Stocks fell sharply today as weak economic data fueled recession fears. The S&P 500 "
        "dropped {pct}% in its worst session in weeks.",
    ),
    _Template(
        "neutral",
        "market",
        "Stock market today: what to watch ahead of the Fed meeting",
        "Investors are waiting for the Federal Reserve's policy meeting this week. Here is the "
        "economic calendar for the next few days.",
    ),
)
_BY_SCOPE_TONE: dict[tuple[str, str], tuple[int, ...]] = {}
for _i, _t in enumerate(TEMPLATES):
    _BY_SCOPE_TONE[(_t.scope, _t.tone)] = (*_BY_SCOPE_TONE.get((_t.scope, _t.tone), ()), _i)
del _i, _t
_TONES: tuple[Tone, ...] = ("positive", "negative", "neutral")

# Own articles a symbol gets in a day (weights for 0..5); a shared piece may add one more.
_WEEKDAY_COUNTS = (2, 3, 4, 4, 3, 2)
_WEEKEND_COUNTS = (6, 3)
_SECTOR_PIECE_ODDS = {False: 0.5, True: 0.08}  # keyed on "is a weekend"
_BUCKET_PIECE_ODDS = {False: 0.35, True: 0.05}
_MARKET_PIECES = {False: (1, 3), True: (0, 1)}  # (min, max) per day

# publishedDate is New York wall time between 04:00:00 and 20:00:00.
_FIRST_SECOND = 4 * 3600
_LAST_SECOND = 20 * 3600


@dataclass(frozen=True, slots=True)
class _Article:
    """One article, without the symbol a row adds to it."""

    published: str
    publisher: str
    site: str
    title: str
    image: str
    text: str
    url: str

    def row(self, symbol: str | None) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "publishedDate": self.published,
            "publisher": self.publisher,
            "title": self.title,
            "image": self.image,
            "site": self.site,
            "text": self.text,
            "url": self.url,
        }


def _rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _prose(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def company_name(symbol: str) -> str:
    """The name titles use for ``symbol``: a company name if well known, else the ticker."""
    return COMPANY_NAMES.get(symbol, symbol)


def _article(
    rng: random.Random, day: date, scope: str, key: str, index: int, **fields: str
) -> _Article:
    tone = rng.choice(_TONES)
    number = rng.choice(_BY_SCOPE_TONE[(scope, tone)])
    template = TEMPLATES[number]
    values = {"pct": str(rng.randint(3, 14)), **fields}
    title = template.title.format(**values)
    text = template.text.format(**values)
    publisher, site = rng.choice(PUBLISHERS)
    second = rng.randint(_FIRST_SECOND, _LAST_SECOND)
    published = f"{day.isoformat()} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    # Unique per article: the date, the template and a hash of what the article is about.
    uid = hashlib.blake2b(f"{scope}|{key}|{day}|{index}".encode(), digest_size=5).hexdigest()
    slug = _SLUG_RE.sub("-", title.lower()).strip("-")[:80].rstrip("-")
    stem = f"{slug}-{uid}"
    return _Article(
        published=published,
        publisher=publisher,
        site=site,
        title=title,
        image=f"{IMAGE_HOST}/{stem}.jpg",
        text=text,
        url=f"{NEWS_HOST}/{site}/{day:%Y/%m/%d}/{stem}-t{number:02d}",
    )


@functools.lru_cache(maxsize=65_536)
def _own_articles(symbol: str, day: date, seed: int) -> tuple[_Article, ...]:
    rng = _rng("news-own", seed, symbol, day)
    weights = _WEEKEND_COUNTS if day.weekday() >= 5 else _WEEKDAY_COUNTS
    count = rng.choices(range(len(weights)), weights)[0]
    name = company_name(symbol)
    return tuple(
        _article(rng, day, "symbol", f"{seed}|{symbol}", i, name=name) for i in range(count)
    )


@functools.lru_cache(maxsize=16_384)
def _sector_piece(sector: str, day: date, seed: int) -> tuple[tuple[str, ...], _Article] | None:
    rng = _rng("news-sector", seed, sector, day)
    if rng.random() >= _SECTOR_PIECE_ODDS[day.weekday() >= 5]:
        return None
    members = SECTORS[sector]
    mentioned = rng.sample(members, rng.randint(2, min(4, len(members))))
    names = _prose([company_name(s) for s in mentioned])
    article = _article(rng, day, "sector", f"{seed}|{sector}", 0, sector=sector, names=names)
    return tuple(mentioned), article


def peer_bucket(symbol: str, seed: int = 0) -> int:
    """The fixed bucket (0-149) of a symbol outside :data:`SECTORS`: every symbol in one
    bucket gets that bucket's pieces, so a universe's grouping never depends on a query."""
    digest = hashlib.blake2b(f"news-bucket|{seed}|{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


@functools.lru_cache(maxsize=16_384)
def _bucket_piece(bucket: int, day: date, seed: int) -> _Article | None:
    rng = _rng("news-bucket", seed, bucket, day)
    if rng.random() >= _BUCKET_PIECE_ODDS[day.weekday() >= 5]:
        return None
    sector = _BUCKET_SECTORS[bucket % len(_BUCKET_SECTORS)]
    return _article(rng, day, "bucket", f"{seed}|{bucket}", 0, sector=sector)


@functools.lru_cache(maxsize=16_384)
def _symbol_day(symbol: str, day: date, seed: int) -> tuple[_Article, ...]:
    if day < NEWS_START or not _SYMBOL_RE.match(symbol):
        return ()
    articles = list(_own_articles(symbol, day, seed))
    sector = _SECTOR_OF.get(symbol)
    if sector is not None:
        piece = _sector_piece(sector, day, seed)
        if piece is not None and symbol in piece[0]:
            articles.append(piece[1])
    else:
        shared = _bucket_piece(peer_bucket(symbol, seed), day, seed)
        if shared is not None:
            articles.append(shared)
    return tuple(articles)


@functools.lru_cache(maxsize=4_096)
def _market_day(day: date, seed: int) -> tuple[_Article, ...]:
    if day < NEWS_START:
        return ()
    rng = _rng("news-market", seed, day)
    low, high = _MARKET_PIECES[day.weekday() >= 5]
    return tuple(_article(rng, day, "market", str(seed), i) for i in range(rng.randint(low, high)))


def symbol_news(symbol: str, day: date, seed: int = 0) -> list[dict[str, Any]]:
    """``symbol``'s articles published on New York date ``day`` (0-6 of them), as FMP rows,
    in no particular order. Lower-case or malformed symbols have none, as on FMP."""
    return [a.row(symbol) for a in _symbol_day(symbol, day, seed)]


def market_news(day: date, seed: int = 0) -> list[dict[str, Any]]:
    """The market-wide articles (``symbol`` null) the latest feed carries on ``day``."""
    return [a.row(None) for a in _market_day(day, seed)]


def article_tone(url: str) -> Tone:
    """The tone a reader gives the title of the sandbox article at ``url``.

    Raises ValueError for a URL the sandbox did not serve.
    """
    match = _URL_TEMPLATE_RE.search(url)
    if not url.startswith(NEWS_HOST + "/") or match is None:
        raise ValueError(f"not a sandbox news URL: {url!r}")
    number = int(match.group(1))
    if number >= len(TEMPLATES):
        raise ValueError(f"not a sandbox news URL: {url!r}")
    return TEMPLATES[number].tone


def default_from(today: date) -> date:
    """The implicit ``from`` when a request names none: three months before ``today``."""
    month = today.month - DEFAULT_LOOKBACK_MONTHS
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return today.replace(
        year=year, month=month, day=min(today.day, calendar.monthrange(year, month)[1])
    )


def _day_rows(
    symbols: Sequence[str | None], day: date, seed: int
) -> list[tuple[_Article, str | None]]:
    rows: list[tuple[str, str, str, _Article, str | None]] = []
    for symbol in symbols:
        articles = _market_day(day, seed) if symbol is None else _symbol_day(symbol, day, seed)
        rows.extend((a.published, a.url, symbol or "", a, symbol) for a in articles)
    # Newest first; ties (one shared article, several symbols) by url, then symbol.
    rows.sort(key=lambda r: (r[1], r[2]))
    rows.sort(key=lambda r: r[0], reverse=True)
    return [(r[3], r[4]) for r in rows]


def news_page(
    symbols: Iterable[str | None],
    *,
    start: date | None,
    end: date | None,
    now: datetime,
    seed: int = 0,
    page: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """One page of the (article, symbol) rows of ``symbols`` (None: the market-wide pieces),
    newest first, as FMP's news endpoints answer it.

    ``now`` is naive New York wall time: nothing published after it is served. ``start``
    defaults to :func:`default_from` of ``now`` and never reaches before
    :data:`NEWS_START`; ``end`` (inclusive) defaults to ``now``'s date. ``limit`` is capped at
    :data:`MAX_LIMIT`; ``page`` is 0-based (range checks are the caller's).
    """
    limit = min(limit, MAX_LIMIT)
    if limit <= 0 or page < 0:
        return []
    today = now.date()
    start = max(start if start is not None else default_from(today), NEWS_START)
    end = min(end if end is not None else today, today)
    ceiling = now.strftime("%Y-%m-%d %H:%M:%S")
    unique = list(dict.fromkeys(symbols))
    wanted = (page + 1) * limit
    rows: list[tuple[_Article, str | None]] = []
    day = end
    # Every row of a day is newer than every row of the day before, so walking back a day
    # at a time can stop once the page is full: a deep range costs no more than one page.
    while day >= start and len(rows) < wanted:
        day_rows = _day_rows(unique, day, seed)
        if day == today:
            day_rows = [r for r in day_rows if r[0].published <= ceiling]
        rows.extend(day_rows)
        day -= timedelta(days=1)
    return [article.row(symbol) for article, symbol in rows[page * limit : wanted]]


__all__ = [
    "COMPANY_NAMES",
    "DEFAULT_LIMIT",
    "LATEST_SYMBOLS",
    "MAX_LIMIT",
    "MAX_PAGE",
    "NEWS_START",
    "SECTORS",
    "TEMPLATES",
    "Tone",
    "article_tone",
    "company_name",
    "default_from",
    "market_news",
    "news_page",
    "peer_bucket",
    "symbol_news",
]
