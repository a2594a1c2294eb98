"""The sandbox's Massive (formerly Polygon.io) dialect, tested over real HTTP on a loopback port
beside its FMP endpoints."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from quote_pipeline.sandbox import (
    GATED_ENDPOINTS,
    FaultConfig,
    SandboxConfig,
    SandboxServer,
    default_market_universe,
    synthetic_symbols,
)
from quote_pipeline.sandbox.command import add_sandbox_parser, config_from_args
from quote_pipeline.sandbox.market import NEW_YORK, decimal_text, nyse_sessions, simulated_quote
from quote_pipeline.sandbox.massive import (
    BEFORE_CLOSE_MESSAGE,
    NOT_ENTITLED_MESSAGE,
    RATE_LIMIT_MESSAGE,
    UNKNOWN_KEY_MESSAGE,
    daily_aggs,
    grouped_daily_bars,
    number_text,
    snapshot_ticker,
)
from quote_pipeline.sandbox.server import INVALID_KEY_MESSAGE

FMP_KEY = "sandbox-key"
MASSIVE_KEY = "sandbox-massive-key"
SNAPSHOT = "/v2/snapshot/locale/us/markets/stocks/tickers"
GROUPED = "/v2/aggs/grouped/locale/us/market/stocks"
RANGE = "/v2/aggs/ticker/range"
PREV = "/v2/aggs/ticker/prev"
QUOTE = "/stable/quote-short"
FULL = "/stable/historical-price-eod/full"
RAW = "/stable/historical-price-eod/non-split-adjusted"
NOW = datetime(2026, 11, 24, 15, 42, 30, 123456, tzinfo=NEW_YORK)  # a Tuesday, before the close
TODAY = NOW.date()
AFTER_CLOSE = datetime(2026, 11, 24, 16, 30, tzinfo=NEW_YORK)
REPO = Path(__file__).resolve().parents[2]
UNIVERSE = ("AAPL", "MSFT", "BRK.B", "SPLT", "XBIGPRICE", "XDUSTPRICE", "T001", "T002")
# SPLT splits 4:1 inside the compared window (the clock is past it).
SPLIT = ("SPLT", date(2026, 11, 16), 4, 1)
AGG_FIELDS = ["o", "h", "l", "c", "v", "vw", "t", "n"]
SNAPSHOT_FIELDS = ["ticker", "todaysChange", "todaysChangePerc", "updated", "day", "min", "prevDay"]
ANY = type("Any", (), {"__eq__": lambda self, other: True, "__hash__": None})()


def grouped(day: date | str) -> str:
    return f"{GROUPED}/{day}"


def aggs(ticker: str, start: Any, end: Any, multiplier: Any = 1, timespan: str = "day") -> str:
    return f"/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{start}/{end}"


def prev(ticker: str) -> str:
    return f"/v2/aggs/ticker/{ticker}/prev"


def decimal_json(response: requests.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


@dataclass
class Client:
    server: SandboxServer
    session: requests.Session

    def massive(
        self,
        path: str,
        *,
        key: str | None = MASSIVE_KEY,
        how: str = "header",
        timeout: float = 10,
        **params: Any,
    ) -> requests.Response:
        headers = {}
        if key is not None and how in ("header", "both"):
            headers["Authorization"] = f"Bearer {key}"
        if key is not None and how in ("query", "both"):
            params["apiKey"] = key
        url = self.server.url + path
        return self.session.get(url, params=params, headers=headers, timeout=timeout)

    def ok(self, path: str, **params: Any) -> Any:
        response = self.massive(path, **params)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return decimal_json(response)

    def fmp(self, path: str, *, key: str | None = FMP_KEY, **params: Any) -> requests.Response:
        if key is not None:
            params["apikey"] = key
        return self.session.get(self.server.url + path, params=params, timeout=10)

    def fmp_rows(self, path: str, **params: Any) -> Any:
        response = self.fmp(path, **params)
        assert response.status_code == 200, response.text
        return decimal_json(response)


@contextlib.contextmanager
def sandbox(faults: FaultConfig | None = None, **config: Any) -> Iterator[Client]:
    config.setdefault("clock", NOW)
    config.setdefault("market_universe", UNIVERSE)
    cfg = SandboxConfig(faults=faults or FaultConfig(), **config)
    with SandboxServer(cfg) as server, requests.Session() as session:
        yield Client(server, session)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with sandbox(seed=5, splits=(SPLIT,), massive_plan="advanced") as c:
        yield c


def is_massive_error(body: Any, status: str = "ERROR") -> bool:
    field = "error" if status == "ERROR" else "message"
    return (
        set(body) == {"status", "request_id", field}
        and body["status"] == status
        and len(body["request_id"]) == 32
    )


# --- shapes and prices ----------------------------------------------------------------------


def test_snapshot_shape_and_prices_match_the_fmp_quote(client: Client) -> None:
    for _ in range(2):  # at two generations
        generation = client.server.stats()["generation"]
        body = client.ok(SNAPSHOT, tickers=",".join(UNIVERSE), include_otc="false")
        assert list(body) == ["status", "count", "request_id", "tickers"]
        assert body["status"] == "OK" and body["count"] == len(UNIVERSE)
        assert [t["ticker"] for t in body["tickers"]] == list(UNIVERSE)
        updated = (NOW - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
        assert updated % 10**9 == 123456000  # nanoseconds, exact to the clock's microsecond
        for row in body["tickers"]:
            symbol = row["ticker"]
            [fmp] = client.fmp_rows(QUOTE, symbol=symbol)
            assert fmp == simulated_quote(symbol, seed=5, generation=generation)
            price, change = fmp["price"], fmp["change"]
            assert list(row) == [*SNAPSHOT_FIELDS, "lastTrade", "lastQuote"]
            assert row["lastTrade"]["p"] == row["day"]["c"] == row["min"]["c"] == price
            assert row["todaysChange"] == change
            assert row["prevDay"]["c"] == price - change
            assert row["day"]["v"] == row["min"]["av"] == fmp["volume"]
            expected = (change / (price - change) * 100).quantize(Decimal("0.00001"))
            assert row["todaysChangePerc"] == expected
            assert row["updated"] == updated
            assert row["min"]["t"] == updated // 10**6 // 60_000 * 60_000
            assert updated - 5 * 10**9 <= row["lastTrade"]["t"] <= updated
            assert updated - 10**9 <= row["lastQuote"]["t"] <= updated
            for block in ("day", "min", "prevDay"):
                bar = row[block]
                assert bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
                assert bar["l"] > 0 and isinstance(bar["v"], int)
                assert bar["vw"] == (bar["o"] + bar["h"] + bar["l"] + bar["c"]) / 4
            assert set(row["lastTrade"]) == {"p", "s", "t", "x", "i", "c"}
            assert isinstance(row["lastTrade"]["i"], str) and row["lastTrade"]["c"]
            quote = row["lastQuote"]
            assert list(quote) == ["p", "s", "P", "S", "t"]
            assert 0 < quote["p"] < price < quote["P"]
            # Exact text: the price's digits, as the FMP endpoint writes them.
            assert f'"c":{decimal_text(price)},' in client.massive(SNAPSHOT, tickers=symbol).text
        client.server.advance()


def test_snapshot_text_is_the_row_builder() -> None:
    """The served text (built from cached templates) is the pure row builder's row."""
    generation = 3
    symbols = [*UNIVERSE, "BTCUSD", "EURUSD=X", *synthetic_symbols(40)]
    for plan in ("starter", "developer", "advanced"):
        with sandbox(seed=5, massive_plan=plan, clock=NOW) as c:
            c.server.advance(generation)
            body = c.ok(SNAPSHOT, tickers=",".join(symbols))
            expected = [
                snapshot_ticker(s, seed=5, generation=generation, now=NOW, plan=plan)
                for s in symbols
            ]
            assert body["tickers"] == expected


def test_number_text_is_decimal_text() -> None:
    rng = random.Random(1)
    values = [Decimal("0"), Decimal("-0.00"), Decimal("100.00"), Decimal("1E+2"), Decimal("1E-9")]
    for _ in range(5000):
        digits = rng.randint(1, 24)
        values.append(Decimal(rng.randint(0, 10**digits)).scaleb(-rng.randint(0, 12)))
    for value in values:
        assert number_text(value) == decimal_text(value), value


def test_empty_tickers_is_the_whole_universe(client: Client) -> None:
    body = client.ok(SNAPSHOT, tickers="")
    assert [t["ticker"] for t in body["tickers"]] == list(UNIVERSE)
    assert client.ok(SNAPSHOT)["count"] == len(UNIVERSE)
    # Case-sensitive, as on Massive; unknown tickers are simply absent.
    body = client.ok(SNAPSHOT, tickers="aapl,AAPL,ZZZZ.NOPE!,MSFT,AAPL")
    assert [t["ticker"] for t in body["tickers"]] == ["AAPL", "MSFT"] and body["count"] == 2


def test_grouped_daily_equals_the_fmp_bars_across_a_split(client: Client) -> None:
    start, end = date(2026, 11, 9), date(2026, 11, 20)
    raw = {s: client.fmp_rows(RAW, symbol=s, **{"from": start, "to": end}) for s in UNIVERSE}
    full = {s: client.fmp_rows(FULL, symbol=s, **{"from": start, "to": end}) for s in UNIVERSE}
    sessions = nyse_sessions(start, end)
    assert len(sessions) == 10
    for day in sessions:
        as_traded = client.ok(grouped(day), adjusted="false", include_otc="false")
        adjusted = client.ok(grouped(day), adjusted="true")
        assert client.ok(grouped(day)) == {**adjusted, "request_id": ANY}  # default: adjusted
        for body, flag in ((as_traded, False), (adjusted, True)):
            assert list(body) == [
                "status", "queryCount", "resultsCount", "adjusted", "request_id", "results"
            ]  # fmt: skip
            assert body["status"] == "OK" and body["adjusted"] is flag
            assert body["queryCount"] == body["resultsCount"] == len(UNIVERSE)
            assert [r["T"] for r in body["results"]] == list(UNIVERSE)
        close = datetime.combine(day, datetime.min.time(), NEW_YORK).replace(hour=16)
        close_ms = int(close.timestamp() * 1000)
        for symbol, r_row, a_row in zip(
            UNIVERSE, as_traded["results"], adjusted["results"], strict=True
        ):
            [fmp_raw] = [b for b in raw[symbol] if b["date"] == day.isoformat()]
            [fmp_full] = [b for b in full[symbol] if b["date"] == day.isoformat()]
            assert list(r_row) == ["T", *AGG_FIELDS]
            assert (r_row["o"], r_row["h"], r_row["l"], r_row["c"], r_row["v"]) == (
                fmp_raw["adjOpen"], fmp_raw["adjHigh"], fmp_raw["adjLow"], fmp_raw["adjClose"],
                fmp_raw["volume"],
            )  # fmt: skip
            assert (a_row["o"], a_row["h"], a_row["l"], a_row["c"], a_row["v"]) == (
                fmp_full["open"], fmp_full["high"], fmp_full["low"], fmp_full["close"],
                fmp_full["volume"],
            )  # fmt: skip
            assert a_row["vw"] == fmp_full["vwap"]
            assert r_row["t"] == a_row["t"] == close_ms
            assert r_row["n"] == a_row["n"] > 0
            if symbol == "SPLT" and day < SPLIT[1]:
                assert r_row["c"] == 4 * a_row["c"] and a_row["v"] == 4 * r_row["v"]
            elif symbol == "SPLT":
                assert r_row == a_row
        # The pure builder agrees with the served rows.
        built = grouped_daily_bars(
            day, universe=UNIVERSE, seed=5, adjusted=False, injected_splits=(SPLIT,)
        )
        assert built == as_traded["results"]


def test_grouped_daily_days_without_a_session(client: Client) -> None:
    for day in ("2026-11-21", "2026-11-22", "2026-11-26", "2026-12-25", "2026-11-25", "2027-01-04"):
        for adjusted in ("true", "false"):
            body = client.ok(grouped(day), adjusted=adjusted)
            if day == "2026-11-25":  # tomorrow: a session, but in the future
                assert "results" not in body
            assert {k: v for k, v in body.items() if k != "request_id"} == {
                "status": "OK",
                "queryCount": 0,
                "resultsCount": 0,
                "adjusted": adjusted == "true",
            }
    # Today (a paid plan, before the close) has its bar, as FMP's EOD endpoints do.
    assert client.ok(grouped(TODAY))["resultsCount"] == len(UNIVERSE)
    for bad in ("2026-13-01", "20261124", "yesterday", "2026-11-24x"):
        response = client.massive(grouped(bad))
        assert response.status_code == 400
        assert is_massive_error(response.json()), response.text
    response = client.massive(grouped("2026-11-24"), adjusted="maybe")
    assert response.status_code == 400 and is_massive_error(response.json())


def test_daily_range_and_prev(client: Client) -> None:
    start, end = date(2026, 11, 9), date(2026, 11, 20)
    raw = client.fmp_rows(RAW, symbol="SPLT", **{"from": start, "to": end})
    full = client.fmp_rows(FULL, symbol="SPLT", **{"from": start, "to": end})
    as_traded = client.ok(aggs("SPLT", start, end), adjusted="false")
    adjusted = client.ok(aggs("SPLT", start, end))
    assert list(adjusted) == [
        "ticker", "status", "queryCount", "resultsCount", "adjusted", "request_id", "results"
    ]  # fmt: skip
    assert adjusted["ticker"] == "SPLT" and adjusted["adjusted"] is True
    assert adjusted["queryCount"] == adjusted["resultsCount"] == 10
    for rows, fmp, names in (
        (as_traded["results"], raw, ("adjOpen", "adjHigh", "adjLow", "adjClose")),
        (adjusted["results"], full, ("open", "high", "low", "close")),
    ):
        assert [list(r) for r in rows] == [AGG_FIELDS] * 10
        for row, bar in zip(rows, reversed(fmp), strict=True):  # FMP is newest first
            midnight = datetime.fromisoformat(bar["date"]).replace(tzinfo=NEW_YORK)
            assert row["t"] == int(midnight.timestamp() * 1000)
            assert [row[k] for k in "ohlc"] == [bar[n] for n in names]
            assert row["v"] == bar["volume"]
    assert (
        daily_aggs("SPLT", start, end, seed=5, adjusted=False, injected_splits=(SPLIT,))
        == as_traded["results"]
    )
    # sort, limit, millisecond bounds, a future end.
    desc = client.ok(aggs("SPLT", start, end), sort="desc", limit=3)
    assert desc["results"] == adjusted["results"][::-1][:3] and desc["resultsCount"] == 3
    ms = [int(datetime.combine(d, datetime.min.time(), NEW_YORK).timestamp() * 1000)
          for d in (start, end)]  # fmt: skip
    assert client.ok(aggs("SPLT", *ms))["results"] == adjusted["results"]
    future = client.ok(aggs("AAPL", "2026-11-20", "2027-06-30"))
    assert [r["t"] for r in future["results"]][-1] == ms_midnight(TODAY)
    # Unknown tickers and empty ranges: resultsCount 0 and no results.
    for path in (aggs("ZZZZ.NOPE!", start, end), aggs("aapl", start, end),
                 aggs("AAPL", "2026-11-21", "2026-11-22"), aggs("AAPL", end, start)):  # fmt: skip
        body = client.ok(path)
        assert body["resultsCount"] == body["queryCount"] == 0 and "results" not in body
    for path in (
        aggs("AAPL", start, end, 5, "minute"),
        aggs("AAPL", start, end, 1, "week"),
        aggs("AAPL", start, end, 2, "day"),
        aggs("AAPL", start, end, 1, "fortnight"),
        aggs("AAPL", "Nov 9", end),
    ):
        response = client.massive(path)
        assert response.status_code == 400 and is_massive_error(response.json()), path
    for params in ({"sort": "up"}, {"limit": "x"}, {"limit": "0"}, {"adjusted": "1"}):
        response = client.massive(aggs("AAPL", start, end), **params)
        assert response.status_code == 400 and is_massive_error(response.json()), params

    # prev: the session before today, t its close.
    body = client.ok(prev("SPLT"))
    assert list(body) == [
        "ticker", "status", "queryCount", "resultsCount", "adjusted", "request_id", "results"
    ]  # fmt: skip
    assert body["resultsCount"] == 1
    [row] = body["results"]
    [fmp] = client.fmp_rows(FULL, symbol="SPLT", **{"from": "2026-11-23", "to": "2026-11-23"})
    assert list(row) == ["T", *AGG_FIELDS] and row["T"] == "SPLT"
    assert [row[k] for k in "ohlcv"] == [fmp[k] for k in ("open", "high", "low", "close", "volume")]
    close = datetime(2026, 11, 23, 16, tzinfo=NEW_YORK)
    assert row["t"] == int(close.timestamp() * 1000)
    unknown = client.ok(prev("GONE.NOPE!"))
    assert unknown["resultsCount"] == 0 and "results" not in unknown


def ms_midnight(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), NEW_YORK).timestamp() * 1000)


# --- auth -----------------------------------------------------------------------------------


def test_auth_forms_and_dialects_stay_apart() -> None:
    with sandbox(api_key="fmp-secret-1", massive_api_key="massive-secret-2") as c:
        assert c.massive(SNAPSHOT, key="massive-secret-2", how="header").status_code == 200
        assert c.massive(SNAPSHOT, key="massive-secret-2", how="query").status_code == 200
        assert c.massive(SNAPSHOT, key="massive-secret-2", how="both").status_code == 200
        for key, how in (
            ("wrong", "header"),
            ("wrong", "query"),
            (None, "header"),
            ("fmp-secret-1", "header"),  # FMP's key is not Massive's
            ("fmp-secret-1", "query"),
        ):
            for path in (SNAPSHOT, grouped("2026-11-23"), aggs("AAPL", TODAY, TODAY), prev("A")):
                response = c.massive(path, key=key, how=how)
                assert response.status_code == 401
                assert response.json()["error"] == UNKNOWN_KEY_MESSAGE
                assert is_massive_error(response.json())
        # A non-Bearer scheme, or FMP's own spelling of the parameter, is no key at all.
        response = c.session.get(
            c.server.url + SNAPSHOT, headers={"Authorization": "Token massive-secret-2"}, timeout=5
        )
        assert response.status_code == 401
        assert c.massive(SNAPSHOT, key=None, apikey="massive-secret-2").status_code == 401
        # FMP's paths keep their own key and error form.
        assert c.fmp(QUOTE, key="fmp-secret-1", symbol="AAPL").status_code == 200
        response = c.fmp(QUOTE, key="massive-secret-2", symbol="AAPL")
        assert response.status_code == 401
        assert response.json() == {"Error Message": INVALID_KEY_MESSAGE}
        response = c.session.get(
            c.server.url + QUOTE,
            params={"symbol": "AAPL"},
            headers={"Authorization": "Bearer massive-secret-2"},
            timeout=5,
        )
        assert response.status_code == 401 and "Error Message" in response.json()
        # Unknown paths answer in the dialect of their prefix.
        missing = c.massive("/v2/no/such/thing")
        assert missing.status_code == 404 and missing.json()["status"] == "NOT_FOUND"
        assert "Error Message" not in missing.text
        assert "Error Message" in c.fmp("/stable/no-such-thing").json()
        response = c.session.post(
            c.server.url + SNAPSHOT, headers={"Authorization": "Bearer massive-secret-2"}
        )
        assert response.status_code == 405 and is_massive_error(response.json())


# --- plans ----------------------------------------------------------------------------------


def test_plans() -> None:
    with sandbox(massive_plan="basic") as c:
        response = c.massive(SNAPSHOT, tickers="AAPL")
        assert response.status_code == 403
        body = response.json()
        assert is_massive_error(body, "NOT_AUTHORIZED") and body["message"] == NOT_ENTITLED_MESSAGE
        for path in (grouped(TODAY), aggs("AAPL", "2026-11-02", TODAY)):
            response = c.massive(path)
            assert response.status_code == 403
            assert response.json()["message"] == BEFORE_CLOSE_MESSAGE
            assert is_massive_error(response.json(), "NOT_AUTHORIZED")
        # Yesterday, a range ending before today and the previous close are end-of-day data.
        assert c.ok(grouped("2026-11-23"))["resultsCount"] == len(UNIVERSE)
        assert c.ok(aggs("AAPL", "2026-11-02", "2026-11-23"))["resultsCount"] == 16
        assert c.ok(prev("AAPL"))["resultsCount"] == 1
        c.server.set_clock(AFTER_CLOSE)  # after the close, today is end-of-day data too
        assert c.ok(grouped(TODAY))["resultsCount"] == len(UNIVERSE)
        assert c.ok(aggs("AAPL", "2026-11-02", TODAY))["resultsCount"] == 17
        assert c.massive(SNAPSHOT).status_code == 403
    shapes = {}
    for plan in ("starter", "developer", "advanced"):
        with sandbox(massive_plan=plan) as c:
            body = c.ok(SNAPSHOT, tickers="AAPL")
            shapes[plan] = (body["status"], list(body["tickers"][0]))
            assert c.ok(grouped(TODAY))["resultsCount"] == len(UNIVERSE)
    assert shapes == {
        "starter": ("DELAYED", SNAPSHOT_FIELDS),
        "developer": ("OK", [*SNAPSHOT_FIELDS, "lastTrade"]),
        "advanced": ("OK", [*SNAPSHOT_FIELDS, "lastTrade", "lastQuote"]),
    }
    with pytest.raises(ValueError, match="massive_plan"):
        SandboxConfig(massive_plan="free")


# --- faults ---------------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def check_429(response: requests.Response) -> str:
    assert response.status_code == 429
    if not response.content:
        return "empty"
    body = response.json()
    assert is_massive_error(body) and body["error"] == RATE_LIMIT_MESSAGE
    return "json"


def test_rate_limits_quota_and_429_bodies() -> None:
    with sandbox(FaultConfig(rate_limit_rate=1.0)) as c:
        kinds = {check_429(c.massive(grouped("2026-11-23"))) for _ in range(30)}
        assert kinds == {"json", "empty"}  # the vendor sends both
        assert "Error Message" in c.fmp(QUOTE, symbol="AAPL").json()  # FMP's form on FMP's
    with sandbox(FaultConfig(rate_limit_rate=0.3), seed=3) as c:
        codes = [c.massive(prev(s)).status_code for s in synthetic_symbols(60)]
        assert 5 < codes.count(429) < 35 and codes.count(200) == 60 - codes.count(429)
    clock = FakeMonotonic()
    with sandbox(FaultConfig(calls_per_minute=3), rate_clock=clock) as c:
        codes = [c.massive(prev(s)).status_code for s in ("A", "B", "C", "D")]
        assert codes == [200, 200, 200, 429]
        # FMP's calls count in a window of their own (each vendor counts its own key).
        assert [c.fmp(QUOTE, symbol=s).status_code for s in "ABCD"] == [200, 200, 200, 429]
        check_429(c.massive(SNAPSHOT))
        clock.now += 60
        assert [c.massive(prev(s)).status_code for s in "EFGH"] == [200, 200, 200, 429]
    with sandbox(FaultConfig(daily_quota=2)) as c:
        codes = [c.massive(prev(s)).status_code for s in "ABC"]
        assert codes == [200, 200, 429]
        assert c.massive(prev("A"), key="wrong").status_code == 401
        assert c.server.stats()["massive_quota_used"] == 3


def test_server_errors_and_hangs() -> None:
    runs = []
    for seed in (1, 1, 2):
        with sandbox(FaultConfig(server_error_rate=0.5), seed=seed) as c:
            runs.append([c.massive(prev(s)).status_code for s in ["AAPL", "MSFT"] * 15])
    assert runs[0] == runs[1] != runs[2]
    assert set(runs[0]) - {200} <= {500, 502, 503} and 200 in runs[0] and len(set(runs[0])) > 2
    with sandbox(FaultConfig(server_error_symbols={"BOOM"})) as c:
        assert c.massive(prev("BOOM")).status_code >= 500
        assert c.massive(aggs("BOOM", "2026-11-02", "2026-11-20")).status_code >= 500
        assert c.massive(SNAPSHOT, tickers="AAPL,BOOM").status_code >= 500
        assert c.ok(SNAPSHOT, tickers="AAPL")["count"] == 1
    faults = FaultConfig(hang_symbols={"SLOW"}, hang_seconds=1.0)
    with sandbox(faults, market_universe=(*UNIVERSE, "SLOW")) as c:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            c.massive(prev("SLOW"), timeout=0.3)
        with pytest.raises(requests.exceptions.ReadTimeout):
            c.massive(SNAPSHOT, tickers="AAPL,SLOW", timeout=0.3)
        assert c.massive(grouped("2026-11-23"), timeout=0.3).status_code == 200
        assert c.ok(prev("SLOW"), timeout=3)["resultsCount"] == 1
        assert time.monotonic() - started < 3
    with sandbox(latency_ms=150) as c:
        started = time.monotonic()
        assert c.massive(prev("AAPL")).status_code == 200
        assert time.monotonic() - started >= 0.15


def broken(row: dict[str, Any], price: str = "c", count: str = "v") -> bool:
    return not (isinstance(row.get(price), Decimal) and isinstance(row.get(count), int))


def test_symbol_faults() -> None:
    weird = ["WEIRD", "ODD", "QUIRK", "SKEW"]
    faults = FaultConfig(
        unknown_symbols={"GONE"},
        error_body_symbols={"OOPS"},
        malformed_symbols={"CUT"},
        bad_shape_symbols=weird,
        plan_gated_symbols={"VIP"},  # FMP's only: Massive serves VIP
    )
    universe = ("AAPL", "GONE", "OOPS", "CUT", "VIP", *weird)
    with sandbox(faults, market_universe=universe) as c:
        body = c.ok(SNAPSHOT, tickers="AAPL,GONE,VIP,MSFT")
        assert [t["ticker"] for t in body["tickers"]] == ["AAPL", "VIP", "MSFT"]
        assert c.fmp(QUOTE, symbol="VIP").status_code == 402
        oops = c.massive(SNAPSHOT, tickers="AAPL,OOPS")
        assert oops.status_code == 200 and is_massive_error(oops.json())
        for path in (prev("OOPS"), aggs("OOPS", "2026-11-02", "2026-11-20")):
            response = c.massive(path)
            assert response.status_code == 200 and is_massive_error(response.json())
        for response in (
            c.massive(SNAPSHOT, tickers="AAPL,CUT"),
            c.massive(prev("CUT")),
            c.massive(aggs("CUT", "2026-11-02", "2026-11-20")),
        ):
            assert response.status_code == 200 and response.text.startswith("{")
            with pytest.raises(json.JSONDecodeError):
                json.loads(response.text)
        for ticker in ("GONE",):
            assert c.ok(prev(ticker))["resultsCount"] == 0
            assert "results" not in c.ok(aggs(ticker, "2026-11-02", "2026-11-20"))
        # The whole-market answers name no ticker: CUT and OOPS are plain rows there, GONE is
        # left out and the bad shapes are broken on c/v.
        for day_body in (
            c.ok(grouped("2026-11-23")),
            c.ok(grouped("2026-11-23"), adjusted="false"),
        ):
            rows = {r["T"]: r for r in day_body["results"]}
            assert list(rows) == ["AAPL", "OOPS", "CUT", "VIP", *weird]
            assert day_body["resultsCount"] == len(rows)
            assert all(broken(rows[s]) for s in weird)
            assert not any(broken(rows[s]) for s in ("AAPL", "OOPS", "CUT", "VIP"))
        snapshot = {t["ticker"]: t for t in c.ok(SNAPSHOT)["tickers"]}
        assert list(snapshot) == ["AAPL", "OOPS", "CUT", "VIP", *weird]
        for symbol in weird:
            row = snapshot[symbol]
            assert broken(row["day"]) and broken(row["min"])
            assert broken(row["lastTrade"], "p", "s")
            assert all(broken(r) for r in c.ok(aggs(symbol, "2026-11-02", "2026-11-20"))["results"])
            assert broken(c.ok(prev(symbol))["results"][0])
        assert not broken(snapshot["AAPL"]["day"])


def test_endpoint_gates_refuse_on_one_provider_only() -> None:
    assert {"massive_snapshot", "massive_grouped", "massive_aggs", "massive_prev"} <= set(
        GATED_ENDPOINTS
    )
    gates = {
        "massive_snapshot": ["SNAP"],
        "massive_grouped": ["GRP"],
        "massive_aggs": ["AGG"],
        "massive_prev": ["PRV"],
        "quote": ["AAPL"],  # an FMP gate leaves Massive alone
    }
    universe = ("AAPL", "SNAP", "GRP", "AGG", "PRV")
    with sandbox(FaultConfig(endpoint_gated_symbols=gates), market_universe=universe) as c:
        snapshot = [t["ticker"] for t in c.ok(SNAPSHOT, tickers=",".join(universe))["tickers"]]
        assert snapshot == ["AAPL", "GRP", "AGG", "PRV"]
        assert [t["ticker"] for t in c.ok(SNAPSHOT)["tickers"]] == snapshot
        grouped_rows = [r["T"] for r in c.ok(grouped("2026-11-23"))["results"]]
        assert grouped_rows == ["AAPL", "SNAP", "AGG", "PRV"]
        for path, refused in (
            (aggs("AGG", "2026-11-02", "2026-11-20"), True),
            (prev("AGG"), False),
            (prev("PRV"), True),
            (aggs("PRV", "2026-11-02", "2026-11-20"), False),
            (prev("SNAP"), False),
            (prev("GRP"), False),
        ):
            response = c.massive(path)
            if refused:
                assert response.status_code == 403
                assert is_massive_error(response.json(), "NOT_AUTHORIZED")
            else:
                assert response.status_code == 200 and response.json()["resultsCount"] >= 1
        assert c.fmp(QUOTE, symbol="AAPL").status_code == 402  # FMP's gate, FMP's answer
        for symbol in ("SNAP", "GRP", "AGG", "PRV"):  # Massive's gates leave FMP alone
            assert c.fmp(QUOTE, symbol=symbol).status_code == 200


# --- stats ----------------------------------------------------------------------------------


def test_stats_count_templates_and_how_the_key_came() -> None:
    with sandbox(massive_api_key="m4ssive-secret-value") as c:
        key = "m4ssive-secret-value"
        c.massive(SNAPSHOT, key=key, tickers="AAPL,MSFT")
        c.massive(grouped("2026-11-20"), key=key, adjusted="false")
        c.massive(grouped("2026-11-23"), key=key, how="query")
        c.massive(aggs("AAPL", "2026-11-02", "2026-11-20"), key=key, how="both", sort="desc")
        c.massive(prev("MSFT"), key="wrong-key-value")
        c.massive(prev("MSFT"), key=None)
        c.fmp(QUOTE, symbol="AAPL")
        raw = c.session.get(c.server.url + "/_sandbox/stats", timeout=5).text
        assert "m4ssive" not in raw and "wrong-key" not in raw
        stats = json.loads(raw)
        assert stats["by_endpoint"] == {SNAPSHOT: 1, GROUPED: 2, RANGE: 1, PREV: 2, QUOTE: 1}
        assert stats["by_status"] == {"200": 5, "401": 2}
        massive = [e for e in stats["requests"] if e.get("provider") == "massive"]
        assert [e["auth"] for e in massive] == [
            "header",
            "header",
            "query",
            "both",
            "header",
            "none",
        ]
        assert [e["symbols"] for e in massive] == [
            ["AAPL", "MSFT"], [], [], ["AAPL"], ["MSFT"], ["MSFT"]
        ]  # fmt: skip
        assert massive[1]["params"] == {"date": "2026-11-20", "adjusted": "false"}
        assert massive[3]["params"] == {
            "multiplier": "1", "timespan": "day", "from": "2026-11-02", "to": "2026-11-20",
            "sort": "desc",
        }  # fmt: skip
        # A client that never put its key in the URL is easy to check.
        leaked = [e for e in massive if e["auth"] in ("query", "both")]
        assert len(leaked) == 2
        assert "provider" not in stats["requests"][-1]  # FMP's entries are unchanged


# --- the universe, the CLI and speed --------------------------------------------------------


def benchmark_symbols(count: int) -> list[str]:
    """benchmarks/run.py's own ``symbols``, read from its source (importing it needs more)."""
    tree = ast.parse((REPO / "benchmarks" / "run.py").read_text())
    [node] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "symbols"]
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module([node], []), "run.py", "exec"), namespace)
    return namespace["symbols"](count)


def test_universe_default_synthetic_and_cli(tmp_path: Path) -> None:
    sample = (REPO / "quote_pipeline" / "data" / "sample_tickers.csv").read_text().splitlines()
    assert default_market_universe() == tuple(line.split(",")[0] for line in sample[1:] if line)
    assert SandboxConfig().market_universe == default_market_universe()
    assert synthetic_symbols(1000) == benchmark_symbols(1000)
    assert synthetic_symbols(3) == ["AAAA", "AAAB", "AAAC"]
    config = SandboxConfig(market_universe=["aapl", "MSFT", "AAPL", " brk.b "])
    assert config.market_universe == ("AAPL", "MSFT", "BRK.B")
    assert hash(config) == hash(SandboxConfig(market_universe=("AAPL", "MSFT", "BRK.B")))
    with pytest.raises(ValueError, match="universe"):
        SandboxConfig(market_universe=["AAPL", "NOT A SYMBOL"])

    parser = argparse.ArgumentParser(prog="quote-pipeline")
    add_sandbox_parser(parser.add_subparsers(dest="command"))
    config = config_from_args(parser.parse_args(["sandbox"]))
    assert config.massive_api_key == MASSIVE_KEY and config.massive_plan == "developer"
    assert config.market_universe == default_market_universe()
    lines = tmp_path / "lines.txt"
    lines.write_text("# watch list\nAAPL\nmsft\n\nAAAB\n")
    tickers_csv = tmp_path / "tickers.csv"
    tickers_csv.write_text("ticker,name\nKO,Coca-Cola\nPEP,PepsiCo\n")
    symbols_csv = tmp_path / "symbols.csv"
    symbols_csv.write_text("Symbol,Name\nIBM,IBM\nGE,GE\n")
    for path, expected in (
        (lines, ("AAPL", "MSFT", "AAAB", "AAAA", "AAAC")),
        (tickers_csv, ("KO", "PEP", "AAAA", "AAAB", "AAAC")),
        (symbols_csv, ("IBM", "GE", "AAAA", "AAAB", "AAAC")),
    ):
        args = parser.parse_args(
            [
                "sandbox", "--universe", str(path), "--universe-size", "3",
                "--massive-key", "mk", "--massive-plan", "basic",
            ]
        )  # fmt: skip
        config = config_from_args(args)
        assert config.market_universe == expected
        assert config.massive_api_key == "mk" and config.massive_plan == "basic"
    size_only = config_from_args(parser.parse_args(["sandbox", "--universe-size", "2"]))
    assert size_only.market_universe == (*default_market_universe(), "AAAA", "AAAB")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,price\nApple,1\n")
    for bad in (
        ["--universe", str(bad_csv)],
        ["--universe", str(tmp_path / "missing.txt")],
        ["--massive-plan", "free"],
        ["--universe-size", "-1"],
        ["--gate", "massive_nothing:AAPL"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(["sandbox", *bad])
    gate = config_from_args(parser.parse_args(["sandbox", "--gate", "massive_grouped:aapl"]))
    assert gate.faults.endpoint_gated_symbols == {"massive_grouped": {"AAPL"}}


def timed(c: Client, path: str, **params: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = c.massive(path, timeout=30, **params)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed, response.json()


def test_five_thousand_symbols_are_fast() -> None:
    universe = synthetic_symbols(5000)
    with sandbox(market_universe=universe, massive_plan="advanced") as c:
        c.ok(prev("AAPL"))  # the NYSE calendar's one-off load, which FMP's bars pay too
        figures = {}
        for label, path, params in (
            ("grouped as traded", grouped("2026-11-20"), {"adjusted": "false"}),
            ("grouped adjusted", grouped("2026-11-19"), {}),
            ("grouped next day", grouped("2026-11-23"), {}),
            ("snapshot", SNAPSHOT, {}),
        ):
            cold, body = timed(c, path, **params)
            warm, _ = timed(c, path, **params)
            assert len(body.get("results") or body.get("tickers")) == 5000
            figures[label] = (cold, warm)
        c.server.advance()
        figures["snapshot, next generation"] = (timed(c, SNAPSHOT)[0], timed(c, SNAPSHOT)[0])
        for label, (cold, warm) in figures.items():
            print(f"5,000 symbols, {label}: first {cold * 1000:.0f} ms, again {warm * 1000:.0f} ms")
        # Loose bounds (a loaded CI machine); the figures above are what to look at. The first
        # grouped request also works out the universe's splits.
        assert all(cold < 5 and warm < 2 for cold, warm in figures.values()), figures
