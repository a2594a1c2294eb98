"""Stock news from FMP (``/stable/news/stock``) through the fetch engine. No Dagster, no database.

One request asks for a group of symbols (the engine's ``symbols_per_request``, e.g. 25) over a
date window and pages through the answer 250 rows at a time. FMP's traps, which shape the
code (see market-data-apis.md §5):

- ``symbols`` (plural, upper-case) must always be sent: without it FMP silently answers with
  AAPL's news, and the singular ``symbol`` is ignored the same way.
- A row is an (article, symbol) pair: an article about two asked symbols comes twice. Articles
  are kept per symbol and deduplicated on ``url``; pages that shift while they are read (a new
  article pushes the others one row down) give duplicates, never gaps, and dedupe absorbs them.
- ``publishedDate`` is ``YYYY-MM-DD HH:MM:SS`` without a zone, read as New York wall time.
- The endpoint needs FMP's Starter plan or higher; a free key gets HTTP 402. That is raised as
  :class:`FMPEndpointRestrictedError`, which stops the whole fetch at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quote_pipeline.fetch_engine import SymbolResult
from quote_pipeline.fmp.client import FMPClient
from quote_pipeline.fmp.errors import FMPEndpointRestrictedError, FMPError
from quote_pipeline.fmp.history import NonexistentNewYorkTime, new_york_series_to_utc
from quote_pipeline.market_calendar import NEW_YORK
from quote_pipeline.models import FailureKind, SymbolFailure

NEWS_PATH = "/stable/news/stock"

MAX_PAGE_SIZE = 250
"""FMP's cap on ``limit``: a larger one still returns 250 rows, which would end paging early."""
MAX_PAGES = 101
"""Pages 0 to 100: ``page=101`` is answered with HTTP 400."""

PLAN_MESSAGE = "FMP stock news needs the Starter plan or higher; this key's plan lacks it"


@dataclass(frozen=True, slots=True)
class NewsArticle:
    """One news article as FMP lists it; ``published_at`` is aware, in UTC."""

    url: str
    published_at: datetime
    publisher: str | None
    site: str | None
    title: str
    text: str | None
    image: str | None


@dataclass
class TickerNews:
    """One symbol's articles in the asked window, each ``url`` once, newest first as FMP
    sends them. No articles is an answer, not a failure: most symbols have quiet days."""

    symbol: str
    articles: list[NewsArticle] = field(default_factory=list)


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """A page's rows: articles per requested symbol, and problems per symbol (None: a row
    that is not even an object, so it cannot be blamed on one)."""

    articles: dict[str, list[NewsArticle]]
    problems: dict[str | None, list[str]] = field(default_factory=dict)

    def flat_problems(self) -> list[str]:
        return [
            f"{symbol}: {problem}" if symbol else problem
            for symbol, problems in self.problems.items()
            for problem in problems
        ]


def _optional_text(row: dict[str, Any], key: str) -> str | None:
    # An optional field that is empty or of the wrong type is dropped, not a reason to lose
    # the article.
    value = row.get(key)
    return value if isinstance(value, str) and value else None


def _required_text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing {key} (got {value!r})")
    return value


def _wall_time(row: dict[str, Any]) -> datetime:
    raw = row.get("publishedDate")
    if not isinstance(raw, str) or len(raw) < 16:  # a bare date would silently mean midnight
        raise ValueError(f"publishedDate must be 'YYYY-MM-DD HH:MM:SS', got {raw!r}")
    try:
        wall = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"publishedDate must be 'YYYY-MM-DD HH:MM:SS', got {raw!r}") from None
    if wall.tzinfo is not None:
        raise ValueError(f"publishedDate {raw!r} has an offset; FMP sends New York wall time")
    return wall


def _parse(payload: Any, requested: Collection[str]) -> _Parsed:
    if not isinstance(payload, list):
        raise ValueError(f"expected a JSON list, got {type(payload).__name__}")
    wanted = {symbol.upper() for symbol in requested}
    parsed = _Parsed({symbol: [] for symbol in wanted})
    seen: dict[str, set[str]] = {symbol: set() for symbol in wanted}
    pending: list[tuple[str, datetime, dict[str, Any]]] = []
    for index, row in enumerate(payload):
        symbol: str | None = None
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected an object, got {type(row).__name__}")
            raw_symbol = row.get("symbol")
            # Another symbol's row is not ours to judge; nor is a row with no symbol (the
            # market-wide pieces FMP's "latest" feed serves with a null symbol): neither is
            # news of an asked symbol.
            if not isinstance(raw_symbol, str) or raw_symbol.upper() not in wanted:
                continue
            symbol = raw_symbol.upper()
            _required_text(row, "url")
            _required_text(row, "title")
            pending.append((symbol, _wall_time(row), row))
        except ValueError as exc:
            parsed.problems.setdefault(symbol, []).append(f"row {index}: {exc}")
    # One conversion for the page (pandas, DST-aware). The rows of several symbols are not one
    # time series, so the repeated fall-back hour cannot be inferred from their order: it is
    # read as its first occurrence (daylight time), an error of at most an hour on one night.
    instants = new_york_series_to_utc([wall for _, wall, _ in pending], first_occurrence=True)
    for (symbol, _wall, row), instant in zip(pending, instants, strict=True):
        if isinstance(instant, NonexistentNewYorkTime):
            parsed.problems.setdefault(symbol, []).append(f"{row['url']}: {instant}")
            continue
        url = row["url"]
        if url in seen[symbol]:
            continue
        seen[symbol].add(url)
        parsed.articles[symbol].append(
            NewsArticle(
                url=url,
                published_at=instant,
                publisher=_optional_text(row, "publisher"),
                site=_optional_text(row, "site"),
                title=row["title"],
                text=_optional_text(row, "text"),
                image=_optional_text(row, "image"),
            )
        )
    return parsed


def parse_news_rows(
    payload: Any, requested: Collection[str]
) -> tuple[dict[str, list[NewsArticle]], list[str]]:
    """Validate one ``/stable/news/stock`` response: (articles per requested symbol, problems).

    The first dict has an entry, possibly empty, for every requested symbol (upper-cased);
    its articles are in the response's order, each ``url`` once per symbol. Rows of symbols
    not requested (or of no symbol) are ignored. A malformed row (not an object, no url or title, a
    date that is missing, malformed or skipped by a spring-forward change) is left out and
    described in the problems, prefixed by its symbol where it names one; the other rows are
    kept. A payload that is not a list raises :class:`ValueError`.
    """
    parsed = _parse(payload, requested)
    return parsed.articles, parsed.flat_problems()


# --- requests --------------------------------------------------------------------------------

NewsRequest = Callable[[Sequence[str]], list[SymbolResult[TickerNews]]]


def _aware(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return moment


def _get_news(client: FMPClient, params: dict[str, str]) -> list[Any]:
    """One call; any plan refusal becomes :class:`FMPEndpointRestrictedError` saying so."""
    try:
        payload, _fetched_at = client.get_json(NEWS_PATH, params)
    except FMPError as exc:
        # The client raises the restricted error only for a 402 reading "Restricted Endpoint";
        # for news every plan refusal (any 402, "subscription" wording) means the same thing:
        # no symbol can get news on this plan, so the fetch must stop rather than fail each.
        if exc.status == 402 or exc.kind == FailureKind.NOT_IN_PLAN:
            raise FMPEndpointRestrictedError(f"{PLAN_MESSAGE} ({exc})", status=exc.status) from None
        raise
    return payload


def news_request(
    client: FMPClient,
    *,
    since: Mapping[str, datetime],
    default_since: datetime,
    until: datetime,
    page_size: int = MAX_PAGE_SIZE,
    max_pages: int = 100,
) -> NewsRequest:
    """The fetch engine's request for news of a group of symbols (``symbols_per_request``).

    Each symbol's window starts at its ``since`` (by upper-cased symbol; ``default_since``
    for a symbol without one) and the request asks from the earliest of the group's starts
    (its New York date) to ``until``'s New York date, page by page (``limit=page_size``)
    until a page comes back short. Articles older than their own symbol's start are dropped.
    Articles later than ``until`` on its date are kept: ``to`` is a whole date, and
    ``publishedDate``'s zone is not certain enough to cut within it (a later run's dedupe on
    ``url`` absorbs them).

    One result per asked symbol (named as asked; FMP is asked in upper case): a
    :class:`TickerNews` (possibly empty), with a
    ``bad_response`` failure beside it when some of its rows were rejected. A group whose
    window has more than ``max_pages`` full pages gets no value and a permanent
    ``api_error`` failure: ask a shorter window or fewer symbols per request.

    Raises :class:`FMPEndpointRestrictedError` when the plan lacks news (HTTP 402), so the
    engine stops after that one request; other API errors are the group's failure.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}")
    if not 1 <= max_pages <= MAX_PAGES:
        raise ValueError(f"max_pages must be 1 to {MAX_PAGES}, got {max_pages}")
    starts_by_symbol = {
        symbol.upper(): _aware(f"since[{symbol!r}]", moment) for symbol, moment in since.items()
    }
    default_since = _aware("default_since", default_since)
    until = _aware("until", until)
    to_day = until.astimezone(NEW_YORK).date()

    def request(unit: Sequence[str]) -> list[SymbolResult[TickerNews]]:
        # FMP matches only upper-case symbols; results carry the symbols as the engine gave
        # them, since it matches results to what it asked by those.
        asked = {symbol: symbol.upper() for symbol in unit}
        symbols = list(dict.fromkeys(asked.values()))
        if not symbols:
            return []  # never a request without symbols: FMP would answer with AAPL's news
        starts = {symbol: starts_by_symbol.get(symbol, default_since) for symbol in symbols}
        from_day = min(starts.values()).astimezone(NEW_YORK).date()
        if from_day > to_day:  # every window starts after until: nothing to ask
            return [SymbolResult(given, TickerNews(given)) for given in asked]
        params = {
            "symbols": ",".join(symbols),
            "from": from_day.isoformat(),
            "to": to_day.isoformat(),
            "limit": str(page_size),
        }
        articles: dict[str, dict[str, NewsArticle]] = {symbol: {} for symbol in symbols}
        problems: dict[str | None, list[str]] = {}
        complete = False
        for page in range(max_pages):
            rows = _get_news(client, {**params, "page": str(page)})
            parsed = _parse(rows, symbols)
            for symbol, found in parsed.articles.items():
                for article in found:
                    articles[symbol].setdefault(article.url, article)  # first page's copy wins
            for symbol, described in parsed.problems.items():
                problems.setdefault(symbol, []).extend(described)
            if len(rows) < page_size:
                complete = True
                break
        if not complete:
            message = (
                f"{NEWS_PATH}: more than {max_pages} pages of {page_size} rows for "
                f"{len(symbols)} symbol(s) from {from_day} to {to_day}: the window is too large "
                "to page through; ask a shorter window or fewer symbols per request"
            )
            return [SymbolResult.failed(given, FailureKind.API_ERROR, message) for given in asked]
        # A row that is not an object cannot be blamed on one symbol: the group hears of it.
        unattributed = problems.get(None, [])
        results: list[SymbolResult[TickerNews]] = []
        for given, symbol in asked.items():
            kept = [a for a in articles[symbol].values() if a.published_at >= starts[symbol]]
            rejected = problems.get(symbol, []) + unattributed
            failure = _rejected(given, rejected) if rejected else None
            results.append(SymbolResult(given, TickerNews(given, kept), failure))
        return results

    return request


def _rejected(symbol: str, reasons: list[str]) -> SymbolFailure:
    shown = "; ".join(reasons[:3]) + (" …" if len(reasons) > 3 else "")
    return SymbolFailure(
        symbol, FailureKind.BAD_RESPONSE, f"{len(reasons)} news row(s) rejected: {shown}"
    )


def probe_news(client: FMPClient, symbol: str) -> None:
    """One request (``limit=1``) before any fan-out: does the plan have news?

    Raises :class:`FMPEndpointRestrictedError` (saying news needs the Starter plan or
    higher) on a 402, and the client's error for an invalid key or an exhausted quota, so a
    run on a free plan stops after one request instead of a 402 per group. Any other failure
    (a 5xx after retries, a timeout, a bad body) says nothing about the plan and is left to
    the fetch itself, which handles it per group.
    """
    try:
        _get_news(client, {"symbols": symbol.upper(), "page": "0", "limit": "1"})
    except FMPEndpointRestrictedError:
        raise
    except FMPError as exc:
        if exc.kind in (FailureKind.AUTH_ERROR, FailureKind.QUOTA_EXHAUSTED):
            raise


__all__ = [
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "NEWS_PATH",
    "PLAN_MESSAGE",
    "NewsArticle",
    "NewsRequest",
    "TickerNews",
    "news_request",
    "parse_news_rows",
    "probe_news",
]
