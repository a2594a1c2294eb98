"""Pages and JSON over the pipeline's tables. Every GET only reads the database; the refresh
POSTs only ask the Dagster webserver to run the pipeline. No view calls a market-data API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from sqlalchemy.exc import SQLAlchemyError

from market import refresh
from market.charts import CHART_DAYS, daily_chart_png
from market.middleware import tables_unavailable
from market.models import (
    CompanyProfile,
    DailyMetric,
    DailyPriceAdjusted,
    NewsArticle,
    Stock,
    TrackedTicker,
)
from market.templatetags.market_format import exact_text
from quote_pipeline.charts import ChartError
from quote_pipeline.models import InvalidSymbolError, normalize_symbol

HEADLINES = 10
# The ticker page after a refresh request reloads itself this often (seconds) until the run
# has written a newer quote, and gives up after WAIT_LIMIT.
RELOAD_SECONDS = 5
WAIT_LIMIT = timedelta(minutes=10)
# Shown on the page and in the JSON, in this order.
METRIC_FIELDS = (
    "return_1d",
    "sma_20",
    "sma_50",
    "sma_200",
    "rsi_14",
    "volatility_20",
    "drawdown",
    "high_52w",
    "low_52w",
)


class UnknownTicker(Http404):
    """A valid symbol the tables know nothing about."""


def _symbol(raw: str) -> str:
    """``raw`` normalized (upper case, checked), or a 404."""
    try:
        return normalize_symbol(raw.strip())
    except InvalidSymbolError:
        raise Http404(f"{raw!r} is not a valid ticker symbol") from None


def change_percent(stock: Stock) -> Decimal | None:
    """The change as a fraction of the previous close (``price - change``), exact."""
    if stock.change is None:
        return None
    try:
        return stock.change / (stock.price - stock.change)
    except (DivisionByZero, InvalidOperation):
        return None


@dataclass
class TickerData:
    """What the tables hold for one ticker."""

    ticker: str
    stock: Stock | None
    profile: CompanyProfile | None
    metrics: DailyMetric | None
    latest_adjusted: DailyPriceAdjusted | None
    tracked: bool


def ticker_data(ticker: str) -> TickerData:
    """Read one ticker's rows; :class:`UnknownTicker` when no table knows it."""
    data = TickerData(
        ticker=ticker,
        stock=Stock.objects.filter(ticker=ticker).first(),
        profile=CompanyProfile.objects.filter(ticker=ticker).first(),
        metrics=DailyMetric.objects.filter(ticker=ticker).order_by("-date").first(),
        latest_adjusted=DailyPriceAdjusted.objects.filter(ticker=ticker).order_by("-date").first(),
        tracked=TrackedTicker.objects.filter(ticker=ticker).exists(),
    )
    if not (data.stock or data.profile or data.metrics or data.latest_adjusted or data.tracked):
        raise UnknownTicker(f"no data for {ticker}: it is not tracked and no table has it")
    return data


# --- pages -----------------------------------------------------------------------------------


@require_GET
def stock_list(request: HttpRequest) -> HttpResponse:
    """Every stored quote: ticker, company, price (as stored), change, volume, quoted at."""
    stocks = list(Stock.objects.all())
    names = dict(
        CompanyProfile.objects.filter(ticker__in=[s.ticker for s in stocks]).values_list(
            "ticker", "company_name"
        )
    )
    tracked = set(TrackedTicker.objects.values_list("ticker", flat=True))
    rows = [
        {
            "stock": s,
            "company": names.get(s.ticker),
            "change_percent": change_percent(s),
            "tracked": s.ticker in tracked,
        }
        for s in stocks
    ]
    waiting = sorted(tracked - {s.ticker for s in stocks})
    return render(request, "market/stock_list.html", {"rows": rows, "waiting": waiting})


@require_GET
def ticker_page(request: HttpRequest, symbol: str) -> HttpResponse:
    """One ticker: price, profile, chart, latest metrics, headlines, the refresh button."""
    ticker = _symbol(symbol)
    if ticker != symbol:
        return redirect("ticker", symbol=ticker, permanent=True)
    data = ticker_data(ticker)
    headlines = list(
        NewsArticle.objects.filter(ticker_links__ticker=ticker).order_by("-published_at", "url")[
            :HEADLINES
        ]
    )
    metrics = [
        (name, getattr(data.metrics, name)) for name in METRIC_FIELDS if data.metrics is not None
    ]
    chart_sessions = (
        min(DailyPriceAdjusted.objects.filter(ticker=ticker).count(), CHART_DAYS)
        if data.latest_adjusted is not None
        else 0
    )
    context = {
        "data": data,
        "ticker": ticker,
        "change_percent": change_percent(data.stock) if data.stock else None,
        "metrics": dict(metrics),
        "headlines": headlines,
        "chart_sessions": chart_sessions,
        "awaited": awaited_refresh(request, data.stock),
        "reload_seconds": RELOAD_SECONDS,
    }
    return render(request, "market/ticker.html", context)


# --- the ticker page after a refresh request ---------------------------------------------------

AWAITING_PARAM, RUN_PARAM, ASKED_PARAM = "awaiting", "run", "asked"
NO_QUOTE = "none"  # AWAITING_PARAM when the ticker had no stored quote when asked


@dataclass(frozen=True)
class AwaitedRefresh:
    """A refresh the page was asked to wait for: ``state`` is ``waiting`` (the stored quote
    is not newer than when the refresh was requested), ``written`` (it is) or ``given_up``
    (still not, ``WAIT_LIMIT`` after the request)."""

    run_id: str
    run_url: str
    state: str


def awaiting_url(ticker: str, run_id: str, updated_at: datetime | None) -> str:
    """The ticker page waiting for run ``run_id`` to write a quote newer than ``updated_at``
    (the stored row's when the refresh was requested; None when there was none)."""
    query = {
        AWAITING_PARAM: NO_QUOTE if updated_at is None else updated_at.isoformat(),
        RUN_PARAM: run_id,
        ASKED_PARAM: timezone.now().isoformat(timespec="seconds"),
    }
    return f"{reverse('ticker', args=[ticker])}?{urlencode(query)}"


def _aware(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def awaited_refresh(request: HttpRequest, stock: Stock | None) -> AwaitedRefresh | None:
    """The refresh the page's query says to wait for, and how far it got, from the stored row
    alone (no Dagster call in a GET); None without (valid) parameters."""
    awaiting, run = request.GET.get(AWAITING_PARAM), request.GET.get(RUN_PARAM)
    if awaiting is None or run is None:
        return None
    try:
        run_id = str(uuid.UUID(run))
    except ValueError:
        return None
    before = None if awaiting == NO_QUOTE else _aware(awaiting)
    if before is None and awaiting != NO_QUOTE:
        return None
    if stock is not None and (before is None or stock.updated_at > before):
        state = "written"
    else:
        asked = _aware(request.GET.get(ASKED_PARAM))
        late = asked is not None and timezone.now() - asked > WAIT_LIMIT
        state = "given_up" if late else "waiting"
    return AwaitedRefresh(run_id=run_id, run_url=refresh.run_url(run_id), state=state)


@require_GET
def ticker_chart(request: HttpRequest, symbol: str) -> HttpResponse:
    """The ticker's daily candlestick chart (PNG) from the stored adjusted prices."""
    ticker = _symbol(symbol)
    try:
        png = daily_chart_png(ticker)
    except ChartError as exc:
        raise Http404(str(exc)) from None
    except SQLAlchemyError as exc:  # the chart reads through SQLAlchemy, not Django
        return tables_unavailable(request, exc)
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "max-age=60"
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 404 page (or JSON under /api/), saying what was not found."""
    message = (
        str(exception.args[0])
        if exception.args and isinstance(exception.args[0], str)
        else "No such page."
    )
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "message": message}, status=404)
    return render(
        request, "market/error.html", {"message": message, "title": "Not found"}, status=404
    )


# --- JSON ------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def ticker_json_payload(data: TickerData) -> dict[str, Any]:
    """The JSON of one ticker: exact prices as strings, times in UTC ISO 8601."""
    stock, profile, metrics = data.stock, data.profile, data.metrics
    adjusted = data.latest_adjusted
    return {
        "ticker": data.ticker,
        "tracked": data.tracked,
        "stock": None
        if stock is None
        else {
            "price": exact_text(stock.price),
            "change": exact_text(stock.change),
            "volume": stock.volume,
            "quoted_at": _iso(stock.quoted_at),
            "updated_at": _iso(stock.updated_at),
        },
        "metrics": None
        if metrics is None
        else {"date": _iso(metrics.date), **{k: getattr(metrics, k) for k in METRIC_FIELDS}},
        "latest_adjusted_close": None
        if adjusted is None
        else {"date": _iso(adjusted.date), "adj_close": exact_text(adjusted.adj_close)},
        "profile": None
        if profile is None
        else {
            "company_name": profile.company_name,
            "exchange": profile.exchange,
            "sector": profile.sector,
            "industry": profile.industry,
            "country": profile.country,
            "currency": profile.currency,
            "market_cap": exact_text(profile.market_cap),
            "website": profile.website,
            "status": profile.status,
        },
        "links": {
            "page": reverse("ticker", args=[data.ticker]),
            "chart": reverse("ticker_chart", args=[data.ticker]),
        },
    }


def _api_error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


@require_GET
def ticker_json(request: HttpRequest, symbol: str) -> JsonResponse:
    """``/api/ticker/<SYM>/``: the stock row, latest metrics and profile basics."""
    try:
        ticker = normalize_symbol(symbol.strip())
    except InvalidSymbolError:
        return _api_error(404, "invalid_symbol", f"{symbol!r} is not a valid ticker symbol")
    try:
        data = ticker_data(ticker)
    except UnknownTicker as exc:
        return _api_error(404, "unknown_ticker", str(exc))
    return JsonResponse(ticker_json_payload(data))


# --- refresh ---------------------------------------------------------------------------------


class NotTracked(refresh.RefreshError):
    """The ticker is not in the tickers table: the refresh would fetch nothing."""

    status = 404


def _launch(ticker: str) -> refresh.LaunchedRefresh:
    if not TrackedTicker.objects.filter(ticker=ticker).exists():
        raise NotTracked(
            f"{ticker} is not tracked (not in the tickers table), so the pipeline does not "
            f"refresh it: add it with `quote-pipeline tickers add {ticker}`"
        )
    return refresh.request_refresh(ticker)


def _stored_updated_at(ticker: str) -> datetime | None:
    """When the ticker's stocks row was last written (None: no row): read before launching,
    so that a run quicker than this request is not missed."""
    return Stock.objects.filter(ticker=ticker).values_list("updated_at", flat=True).first()


@require_POST
def refresh_ticker(request: HttpRequest, symbol: str) -> HttpResponseRedirect:
    """The button: queue a refresh and go back to the ticker page, which waits for the new
    price (reloading itself) and links to the run; or says in one line why not."""
    ticker = _symbol(symbol)
    ticker_data(ticker)  # a 404 for a ticker no table knows
    updated_at = _stored_updated_at(ticker)
    try:
        launched = _launch(ticker)
    except refresh.AlreadyPending as exc:
        messages.warning(
            request,
            format_html(
                'A refresh of {} is already pending: run <a href="{}">{}</a> ({}). '
                "Wait for it to finish.",
                ticker,
                exc.run_url,
                exc.run_id,
                exc.run_status.lower(),
            ),
        )
        return redirect(awaiting_url(ticker, exc.run_id, updated_at))
    except refresh.RefreshError as exc:
        messages.error(request, f"Refresh not requested: {exc}")
        return redirect("ticker", symbol=ticker)
    return redirect(awaiting_url(ticker, launched.run_id, updated_at))


@csrf_exempt
@require_POST
def refresh_ticker_json(request: HttpRequest, symbol: str) -> JsonResponse:
    """``POST /api/ticker/<SYM>/refresh`` (``Content-Type: application/json``, any body; it
    is not read): 202 with the run id and link; 409 when one is pending, 503 when Dagster is
    unreachable.

    Exempt from CSRF tokens (it is for scripts), it accepts only a JSON content type, which a
    cross-site form cannot send without a CORS preflight this site never answers.
    """
    if request.content_type != "application/json":
        return _api_error(415, "unsupported_media_type", "POST with Content-Type: application/json")
    try:
        ticker = normalize_symbol(symbol.strip())
    except InvalidSymbolError:
        return _api_error(404, "invalid_symbol", f"{symbol!r} is not a valid ticker symbol")
    updated_at = _stored_updated_at(ticker)
    try:
        launched = _launch(ticker)
    except refresh.AlreadyPending as exc:
        return _api_error(
            409,
            "already_pending",
            str(exc),
            run_id=exc.run_id,
            run_url=exc.run_url,
            run_status=exc.run_status,
        )
    except NotTracked as exc:
        return _api_error(404, "not_tracked", str(exc))
    except refresh.DagsterUnreachable as exc:
        return _api_error(503, "dagster_unreachable", str(exc))
    except refresh.RefreshError as exc:
        return _api_error(exc.status, "dagster_refused", str(exc))
    return JsonResponse(
        {
            "ticker": ticker,
            "run_id": launched.run_id,
            "run_url": launched.run_url,
            "status": "queued",
            # The ticker page waiting for this run's price.
            "page": awaiting_url(ticker, launched.run_id, updated_at),
        },
        status=202,
    )
