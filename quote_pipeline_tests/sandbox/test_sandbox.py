"""The FMP sandbox, tested over real HTTP on a loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer
from quote_pipeline.sandbox.market import (
    NEW_YORK,
    REFERENCE_PRICES,
    price_places,
    reference_range,
    simulated_daily_bars,
    simulated_intraday_bars,
    simulated_quote,
    symbol_kind,
)
from quote_pipeline.sandbox.server import (
    INVALID_KEY_MESSAGE,
    LIMIT_REACH_MESSAGE,
    PLAN_GATED_MESSAGE,
    RESTRICTED_MESSAGE,
)

KEY = "sandbox-key"
QUOTE = "/stable/quote-short"
BATCH = "/stable/batch-quote-short"
EOD = "/stable/historical-price-eod/full"
CHART = "/stable/historical-chart/5min"
SYMBOLS = [f"T{i:03d}" for i in range(90)] + ["AAPL", "MSFT", "BTCUSD", "ETH-USD", "EURUSD=X"]
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Client:
    server: SandboxServer
    session: requests.Session

    def get(self, path: str, *, key: str | None = KEY, timeout: float = 5, **params: Any):
        if key is not None:
            params["apikey"] = key
        return self.session.get(self.server.url + path, params=params, timeout=timeout)

    def admin(self, method: str, name: str) -> Any:
        response = self.session.request(method, f"{self.server.url}/_sandbox/{name}", timeout=5)
        assert response.status_code == 200
        return response.json()


@contextlib.contextmanager
def sandbox(faults: FaultConfig | None = None, **config: Any) -> Iterator[Client]:
    cfg = SandboxConfig(faults=faults or FaultConfig(), **config)
    with SandboxServer(cfg) as server, requests.Session() as session:
        yield Client(server, session)


def decimal_json(response: requests.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


@pytest.fixture(scope="module")
def premium() -> Iterator[Client]:
    with sandbox(premium=True, seed=7) as client:
        yield client


@pytest.fixture(scope="module")
def basic() -> Iterator[Client]:
    with sandbox() as client:
        yield client


# --- data and encoding ------------------------------------------------------------------


def test_quote_prices_are_exact_json_numbers(premium: Client) -> None:
    premium.admin("POST", "reset")
    generation = premium.server.stats()["generation"]
    kinds = set()
    for symbol in SYMBOLS:
        response = premium.get(QUOTE, symbol=symbol)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        [row] = decimal_json(response)
        expected = simulated_quote(symbol, seed=7, generation=generation)
        assert row == expected
        assert isinstance(row["price"], Decimal) and isinstance(row["volume"], int)
        # Written as plain decimals, exactly the Decimal's digits.
        assert re.search(
            rf'"price":{re.escape(format(expected["price"].normalize(), "f"))}(\.0)?[,}}]',
            response.text,
        )
        assert "e" not in response.text.split('"price":')[1].split(",")[0].lower()
        kind = symbol_kind(symbol)
        kinds.add(kind)
        places = -row["price"].as_tuple().exponent
        if kind == "crypto":
            assert 6 <= price_places(symbol) <= 8
        elif kind == "penny":
            assert price_places(symbol) == 4 and row["price"] < 1
        else:
            assert price_places(symbol) == 2 and 1 <= row["price"] <= 2000
        assert places <= price_places(symbol)
    assert kinds == {"stock", "penny", "crypto"}


# Plausible levels a reader of the demo expects, pinned here rather than read back from the
# table so that a table drifting off them fails too.
PLAUSIBLE = {
    "AAPL": (180, 260),
    "KO": (55, 75),
    "BRK-B": (400, 520),
    "BRK.B": (400, 520),  # how sample_tickers.csv spells it
    "NVDA": (100, 200),
    "SPY": (500, 700),
    "MSFT": (350, 550),
    "XOM": (90, 135),
    "COST": (800, 1100),
    "BTCUSD": (60_000, 150_000),
}
SEEDS = range(6)
GENERATIONS = range(0, 400, 7)


def within(price: Decimal, low: float, high: float) -> bool:
    return Decimal(str(low)) <= price <= Decimal(str(high))


def test_well_known_quotes_sit_in_plausible_ranges(basic: Client) -> None:
    for symbol, (low, high) in PLAUSIBLE.items():
        for seed in SEEDS:
            for generation in GENERATIONS:
                price = simulated_quote(symbol, seed=seed, generation=generation)["price"]
                assert within(price, low, high), (symbol, seed, generation, price)
    for symbol, (low, high) in REFERENCE_PRICES.items():
        # Wide enough for the generation wiggle (at most exp(0.064) either way).
        assert high / low > 1.14, symbol
        prices = {
            simulated_quote(symbol, seed=seed, generation=generation)["price"]
            for seed in SEEDS
            for generation in GENERATIONS
        }
        assert all(within(p, low, high) for p in prices), symbol
        assert len(prices) > len(GENERATIONS)  # still moving with seed and market clock
    # Over HTTP too, as the demo sees them.
    for symbol in ("AAPL", "KO"):
        [row] = decimal_json(basic.get(QUOTE, symbol=symbol))
        assert within(row["price"], *PLAUSIBLE[symbol])


def test_well_known_symbols_are_stocks_with_cents() -> None:
    # These hash to "penny" (prices under $1) without their reference range.
    for symbol in ("XOM", "COST", "CRM", "ADBE", "MCD", "LLY"):
        assert symbol_kind(symbol) == "stock" and price_places(symbol) == 2
    assert reference_range("brk.b") == reference_range("BRK-B") == REFERENCE_PRICES["BRK-B"]
    # Crypto and currencies keep their kind and decimals.
    for symbol in ("BTCUSD", "ETH-USD", "EURUSD=X"):
        assert reference_range(symbol) is not None and symbol_kind(symbol) == "crypto"
        assert 6 <= price_places(symbol) <= 8


def test_well_known_volumes_look_like_a_market() -> None:
    # A large cap trades millions of shares a day, not billions; an index sums its members.
    for seed in range(5):
        for symbol in ("AAPL", "KO", "MSFT", "SPY", "JPM"):
            volume = simulated_quote(symbol, seed=seed)["volume"]
            assert 1_000_000 <= volume <= 200_000_000, (symbol, seed, volume)
        assert simulated_quote("^GSPC", seed=seed)["volume"] > 2**31


def test_well_known_quotes_are_deterministic() -> None:
    for symbol in ("AAPL", "KO", "SPY"):
        assert simulated_quote(symbol, seed=3, generation=9) == simulated_quote(
            symbol.lower(), seed=3, generation=9
        )
        by_seed = {simulated_quote(symbol, seed=seed)["price"] for seed in SEEDS}
        # Each seed draws its own level in the range (two may still share a cent).
        assert len(by_seed) > len(SEEDS) // 2
        by_generation = [simulated_quote(symbol, seed=3, generation=g)["price"] for g in range(5)]
        assert len(set(by_generation)) > 1


def test_unknown_symbols_keep_their_prices() -> None:
    # Golden values from before reference ranges existed: made-up symbols must not move.
    assert simulated_quote("T000", seed=3, generation=5) == {
        "symbol": "T000",
        "price": Decimal("19.67"),
        "change": Decimal("0.10"),
        "volume": 4246989539,
    }
    assert simulated_quote("T016", seed=3, generation=5) == {
        "symbol": "T016",
        "price": Decimal("0.3707"),
        "change": Decimal("-0.0026"),
        "volume": 1297261,
    }
    assert simulated_quote("ZEC-USD", seed=3, generation=5) == {
        "symbol": "ZEC-USD",
        "price": Decimal("4144.4744385"),
        "change": Decimal("-80.4358965"),
        "volume": 98215,
    }
    unknown = [s for s in [*SYMBOLS, "ZEC-USD", "NZDUSD=X"] if reference_range(s) is None]
    assert {symbol_kind(s) for s in unknown} == {"stock", "penny", "crypto"}


def test_well_known_history_stays_near_the_range() -> None:
    # Daily and intraday bars derive from the same base as the quote; for a reference symbol
    # their slow waves are damped so a year spans at most the range's own width.
    for symbol in ("AAPL", "KO", "SPY", "BRK.B", "EURUSD=X"):
        low, high = reference_range(symbol) or (0, 0)
        widen = (high / low) ** 0.5
        for seed in (0, 7):
            daily = simulated_daily_bars(symbol, date(2025, 12, 1), date(2026, 11, 30), seed=seed)
            intraday = simulated_intraday_bars(
                symbol, date(2026, 11, 23), date(2026, 11, 24), seed=seed, now=datetime(2026, 12, 1)
            )
            assert len(daily) > 240 and len(intraday) == 2 * 78
            prices = [
                float(bar[k]) for bar in daily + intraday for k in ("open", "high", "low", "close")
            ]
            assert low / widen <= min(prices) and max(prices) <= high * widen, (symbol, seed)


def test_tiny_prices_keep_every_digit() -> None:
    from quote_pipeline.sandbox.server import json_dumps

    assert json_dumps([Decimal("0.00001234"), Decimal("232.80"), Decimal("100")]) == (
        "[0.00001234,232.8,100.0]"
    )
    assert json.loads(json_dumps({"v": 2**40}))["v"] == 2**40


def test_many_volumes_exceed_int32(premium: Client) -> None:
    rows = decimal_json(premium.get(BATCH, symbols=",".join(SYMBOLS)))
    assert len(rows) == len(SYMBOLS)
    big = [r for r in rows if r["volume"] > 2**31]
    assert len(big) >= len(rows) // 5
    assert all(isinstance(r["volume"], int) and 0 <= r["volume"] < 2 * 10**10 for r in rows)


def test_generation_moves_prices_and_survives_reset(premium: Client) -> None:
    before = decimal_json(premium.get(QUOTE, symbol="AAPL"))[0]
    generation = premium.admin("POST", "advance")["generation"]
    after = decimal_json(premium.get(QUOTE, symbol="AAPL"))[0]
    assert after == simulated_quote("AAPL", seed=7, generation=generation)
    assert (after["price"], after["volume"]) != (before["price"], before["volume"])
    assert premium.admin("POST", "reset")["generation"] == generation


def test_batch_needs_premium(basic: Client, premium: Client) -> None:
    response = basic.get(BATCH, symbols="AAPL,MSFT")
    assert response.status_code == 402
    assert response.json() == {"Error Message": RESTRICTED_MESSAGE}
    rows = premium.get(BATCH, symbols="msft, AAPL,MSFT,NOT A SYMBOL").json()
    assert [r["symbol"] for r in rows] == ["MSFT", "AAPL"]
    assert basic.get(QUOTE, symbol="AAPL").status_code == 200


def test_key_legacy_and_request_errors(basic: Client) -> None:
    for key in (None, "", "wrong"):
        response = basic.get(QUOTE, key=key, symbol="AAPL")
        assert response.status_code == 401
        assert response.json() == {"Error Message": INVALID_KEY_MESSAGE}
    legacy = basic.get("/api/v3/quote-short/AAPL")
    assert legacy.status_code == 403
    assert legacy.json()["Error Message"].startswith("Legacy Endpoint : Due to Legacy endpoints")
    missing = basic.get("/stable/no-such-thing", symbol="AAPL")
    assert missing.status_code == 404 and "Error Message" in missing.json()
    no_symbol = basic.get(QUOTE)
    assert no_symbol.status_code == 400 and "symbol" in no_symbol.json()["Error Message"]
    assert basic.get(QUOTE, symbol="ZZZZ.NOPE!").json() == []


# --- faults -----------------------------------------------------------------------------


def statuses(client: Client, symbols: list[str]) -> list[int]:
    return [client.get(QUOTE, symbol=s).status_code for s in symbols]


def test_server_errors_are_seeded_and_retries_can_succeed() -> None:
    requests_made = ["AAPL", "MSFT", "AAPL", "IBM", "AAPL", "MSFT"] * 5
    runs = []
    for seed in (1, 1, 2):
        with sandbox(FaultConfig(server_error_rate=0.5), seed=seed) as client:
            runs.append(statuses(client, requests_made))
    assert runs[0] == runs[1] != runs[2]
    assert set(runs[0]) - {200} <= {500, 502, 503} and 200 in runs[0]
    assert len(set(runs[0])) > 2  # more than one kind of 5xx

    with sandbox(FaultConfig(server_error_rate=0.5), seed=1) as client:
        failed_first = next(s for s in SYMBOLS if client.get(QUOTE, symbol=s).status_code >= 500)
        for _ in range(30):
            response = client.get(QUOTE, symbol=failed_first)
            if response.status_code == 200:
                break
            assert response.headers["Content-Type"].split(";")[0] in ("text/plain", "text/html")
        assert response.status_code == 200
        assert response.json()[0]["symbol"] == failed_first


def test_rate_limit_faults_and_200_variant() -> None:
    with sandbox(FaultConfig(rate_limit_rate=1.0)) as client:
        response = client.get(QUOTE, symbol="AAPL")
        assert response.status_code == 429
        assert response.json() == {"Error Message": LIMIT_REACH_MESSAGE}
        assert "Retry-After" not in response.headers
    with sandbox(FaultConfig(rate_limit_rate=1.0, limit_reach_in_200=True)) as client:
        response = client.get(QUOTE, symbol="AAPL")
        assert response.status_code == 200
        assert response.json() == {"Error Message": LIMIT_REACH_MESSAGE}
    with sandbox(FaultConfig(rate_limit_rate=0.3), seed=3) as client:
        got = statuses(client, SYMBOLS[:60])
        assert 5 < got.count(429) < 35 and got.count(200) == 60 - got.count(429)


class FakeMonotonic:
    """A monotonic clock in seconds that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_calls_per_minute_window() -> None:
    clock = FakeMonotonic()  # the window slides when the test says, not with real time
    with sandbox(FaultConfig(calls_per_minute=3), rate_clock=clock) as client:
        assert statuses(client, ["A", "B", "C", "D", "E"]) == [200, 200, 200, 429, 429]
        assert client.get(QUOTE, symbol="A").json() == {"Error Message": LIMIT_REACH_MESSAGE}
        clock.now += 59.9  # the first three calls are still in the minute
        assert statuses(client, ["F"]) == [429]
        clock.now += 0.1  # now they left it: three more fit, not four
        assert statuses(client, ["F", "G", "H", "I"]) == [200, 200, 200, 429]
    faults = FaultConfig(calls_per_minute=3, rate_window_seconds=0.6)
    with sandbox(faults, rate_clock=clock) as client:  # a shorter window slides sooner
        assert statuses(client, ["A", "B", "C", "D"]) == [200, 200, 200, 429]
        clock.now += 0.6
        assert statuses(client, ["E", "F", "G", "H"]) == [200, 200, 200, 429]
    with sandbox(FaultConfig(calls_per_minute=2)) as client:  # the real clock, by default
        assert statuses(client, ["A", "B", "C"]) == [200, 200, 429]


def test_daily_quota_is_gone_for_the_day() -> None:
    morning = datetime(2026, 11, 24, 9, 30, tzinfo=NEW_YORK)
    with sandbox(FaultConfig(daily_quota=4), clock=morning) as client:
        assert statuses(client, ["A", "B", "C", "D", "E", "F"]) == [200] * 4 + [429] * 2
        client.server.set_clock(morning.replace(hour=23, minute=59))  # later the same day
        assert statuses(client, ["A", "G"]) == [429, 429]
        assert client.get(QUOTE, key="wrong", symbol="A").status_code == 401
        client.admin("POST", "reset")  # the sandbox's way of starting a new day
        assert statuses(client, ["A", "B", "C", "D", "E"]) == [200] * 4 + [429]
        client.server.set_clock(morning + timedelta(days=1))  # and so is the next New York day
        assert statuses(client, ["A"]) == [200]


def test_symbol_faults_single_and_batch() -> None:
    faults = FaultConfig(
        unknown_symbols={"GONE"},
        error_body_symbols={"OOPS"},
        malformed_symbols={"CUT"},
        bad_shape_symbols={"WEIRD", "ODD", "QUIRK", "SKEW"},
        plan_gated_symbols={"VIP"},
    )
    with sandbox(faults, premium=True) as client:
        assert client.get(QUOTE, symbol="gone").json() == []

        oops = client.get(QUOTE, symbol="OOPS")
        assert oops.status_code == 200
        assert set(oops.json()) == {"Error Message"}
        assert "Limit Reach" not in oops.json()["Error Message"]
        assert client.get(BATCH, symbols="AAPL,OOPS").json() == oops.json()

        for response in (client.get(QUOTE, symbol="CUT"), client.get(BATCH, symbols="AAPL,CUT")):
            assert response.status_code == 200 and response.text.startswith("[")
            with pytest.raises(json.JSONDecodeError):
                json.loads(response.text)

        for symbol in ("WEIRD", "ODD", "QUIRK", "SKEW"):
            [row] = decimal_json(client.get(QUOTE, symbol=symbol))
            assert not (
                isinstance(row.get("price"), Decimal) and isinstance(row.get("volume"), int)
            )
        rows = decimal_json(client.get(BATCH, symbols="AAPL,WEIRD,GONE,VIP,MSFT"))
        assert [r["symbol"] for r in rows] == ["AAPL", "WEIRD", "MSFT"]
        assert rows[0] == simulated_quote("AAPL") and rows[2] == simulated_quote("MSFT")
        assert rows[1] != simulated_quote("WEIRD")

        gated = client.get(QUOTE, symbol="VIP")
        assert gated.status_code == 402
        assert gated.json() == {"Error Message": PLAN_GATED_MESSAGE}

        assert (
            client.get(EOD, symbol="GONE", **{"from": "2025-01-02", "to": "2025-01-10"}).json()
            == []
        )
        assert client.get(EOD, symbol="VIP").status_code == 402


def test_hang_outlasts_the_client_timeout() -> None:
    with sandbox(FaultConfig(hang_symbols={"SLOW"}, hang_seconds=1.0), premium=True) as client:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.get(QUOTE, symbol="SLOW", timeout=0.3)
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.get(BATCH, symbols="AAPL,SLOW", timeout=0.3)
        assert client.get(QUOTE, symbol="AAPL", timeout=0.3).status_code == 200
        # Patient clients get the normal answer.
        assert client.get(QUOTE, symbol="SLOW", timeout=3).json()[0]["symbol"] == "SLOW"
        assert time.monotonic() - started < 3


# --- introspection ----------------------------------------------------------------------


def test_stats_log_without_key() -> None:
    with sandbox(api_key="s3cret-key-value") as client:
        client.get(QUOTE, key="s3cret-key-value", symbol="aapl")
        client.get(QUOTE, key="s3cret-key-value", symbol="MSFT")
        client.get(QUOTE, key="wrong-key-value", symbol="MSFT")
        client.get(BATCH, key="s3cret-key-value", symbols="MSFT,AAPL")
        assert client.admin("GET", "health")["ok"] is True
        raw = client.session.get(client.server.url + "/_sandbox/stats").text
        assert "s3cret" not in raw and "wrong-key" not in raw
        stats = json.loads(raw)
        assert stats["requests_total"] == 4
        assert stats["by_status"] == {"200": 2, "401": 1, "402": 1}
        assert stats["by_endpoint"] == {QUOTE: 3, BATCH: 1}
        first = stats["requests"][0]
        assert first["path"] == QUOTE and first["symbols"] == ["AAPL"] and first["status"] == 200
        assert abs(first["t"] - time.time()) < 60
        assert stats["requests"][3]["symbols"] == ["MSFT", "AAPL"]
        assert client.server.stats()["requests_total"] == 4
        client.admin("POST", "reset")
        assert client.admin("GET", "stats")["requests_total"] == 0
        assert client.admin("GET", "stats")["requests"] == []


# --- history ----------------------------------------------------------------------------


def check_daily_bar(bar: dict[str, Any]) -> None:
    for name in ("open", "high", "low", "close"):
        assert isinstance(bar[name], Decimal) and bar[name] > 0
        assert -bar[name].as_tuple().exponent <= 2
    assert bar["low"] <= min(bar["open"], bar["close"])
    assert bar["high"] >= max(bar["open"], bar["close"])
    assert isinstance(bar["volume"], int) and bar["volume"] >= 0
    assert bar["change"] == bar["close"] - bar["open"]


def test_daily_bars_over_http(basic: Client) -> None:
    params = {"from": "2025-11-20", "to": "2025-12-31"}
    bars = decimal_json(basic.get(EOD, symbol="AAPL", **params))
    dates = [b["date"] for b in bars]
    assert dates == sorted(dates, reverse=True)
    assert dates[0] == "2025-12-31" and dates[-1] == "2025-11-20"
    # Thanksgiving, Christmas, weekends.
    assert not {"2025-11-27", "2025-12-25", "2025-11-22", "2025-12-28"} & set(dates)
    for bar in bars:
        assert bar["symbol"] == "AAPL"
        assert date.fromisoformat(bar["date"]).weekday() < 5
        check_daily_bar(bar)
    # The same bar whatever range it is asked in.
    narrow = decimal_json(
        basic.get(EOD, symbol="AAPL", **{"from": "2025-12-01", "to": "2025-12-01"})
    )
    assert narrow == [b for b in bars if b["date"] == "2025-12-01"]
    assert bars == simulated_daily_bars("AAPL", date(2025, 11, 20), date(2025, 12, 31))
    # Default window: about five years up to today.
    default = decimal_json(basic.get(EOD, symbol="AAPL"))
    today = datetime.now(NEW_YORK).date()
    assert 1230 <= len(default) <= 1270
    assert date.fromisoformat(default[0]["date"]) <= today
    assert date.fromisoformat(default[-1]["date"]) >= today - timedelta(days=5 * 366)
    bad = basic.get(EOD, symbol="AAPL", **{"from": "20/11/2025"})
    assert bad.status_code == 400 and "Error Message" in bad.json()


def test_daily_bars_skip_2026_thanksgiving() -> None:
    bars = simulated_daily_bars("MSFT", date(2026, 11, 21), date(2026, 11, 30), seed=4)
    assert [b["date"] for b in bars] == [
        "2026-11-30",
        "2026-11-27",
        "2026-11-25",
        "2026-11-24",
        "2026-11-23",
    ]
    for bar in bars:
        check_daily_bar(bar)


def test_intraday_bars_over_http(basic: Client) -> None:
    bars = decimal_json(
        basic.get(CHART, symbol="AAPL", **{"from": "2025-11-26", "to": "2025-11-28"})
    )
    assert all("symbol" not in b for b in bars)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:00", b["date"]) for b in bars)
    assert [b["date"] for b in bars] == sorted((b["date"] for b in bars), reverse=True)
    by_day: dict[str, list[str]] = {}
    for bar in bars:
        by_day.setdefault(bar["date"][:10], []).append(bar["date"][11:16])
        assert bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"])
        assert bar["high"] >= max(bar["open"], bar["close"])
        assert isinstance(bar["volume"], int) and bar["volume"] >= 0
    assert set(by_day) == {"2025-11-26", "2025-11-28"}  # Thanksgiving skipped
    assert len(by_day["2025-11-26"]) == 78
    assert by_day["2025-11-26"][0] == "15:55" and by_day["2025-11-26"][-1] == "09:30"
    assert by_day["2025-11-28"][0] == "12:55"  # half day after Thanksgiving
    assert bars == simulated_intraday_bars("AAPL", date(2025, 11, 26), date(2025, 11, 28))


def test_intraday_forming_bar_follows_now() -> None:
    day = date(2026, 11, 24)

    def at(hh: int, mm: int, ss: int) -> list[dict[str, Any]]:
        return simulated_intraday_bars("AAPL", day, day, now=datetime(2026, 11, 24, hh, mm, ss))

    early, late, done = at(10, 2, 10), at(10, 4, 50), at(10, 5, 0)
    assert [b["date"][11:] for b in early[:2]] == ["10:00:00", "09:55:00"]
    assert early[1:] == late[1:]  # finished bars do not move
    assert early[0]["volume"] < late[0]["volume"]
    assert early[0]["open"] == late[0]["open"]
    assert done[1] == simulated_intraday_bars("AAPL", day, day, now=datetime(2026, 11, 25))[-7]
    assert done[0]["date"].endswith("10:05:00")
    # An aware "now" is converted to New York time (EST is UTC-5 in November).
    aware = datetime(2026, 11, 24, 15, 2, 10, tzinfo=UTC)
    assert simulated_intraday_bars("AAPL", day, day, now=aware) == early
    assert simulated_intraday_bars("AAPL", day, day, now=datetime(2026, 11, 24, 9, 29)) == []


# --- simulated clock --------------------------------------------------------------------


def set_clock(client: Client, now: str | None) -> requests.Response:
    return client.session.post(f"{client.server.url}/_sandbox/clock", json={"now": now}, timeout=5)


def test_the_clock_drives_the_forming_bar() -> None:
    day = date(2026, 11, 24)
    first = datetime(2026, 11, 24, 15, 42, 30, tzinfo=NEW_YORK)
    with sandbox(seed=5, clock=first) as client:
        assert client.admin("GET", "clock") == {
            "ok": True,
            "now": "2026-11-24T15:42:30-05:00",
            "simulated": True,
        }
        window = {"from": "2026-11-24", "to": "2026-11-24"}
        early = decimal_json(client.get(CHART, symbol="AAPL", **window))
        assert early == simulated_intraday_bars("AAPL", day, day, seed=5, now=first)
        assert early[0]["date"] == "2026-11-24 15:40:00" and len(early) == 75
        # Without dates, "today" is the clock's New York date as well.
        assert decimal_json(client.get(CHART, symbol="AAPL")) == early

        moved = set_clock(client, "2026-11-24T15:44:00-05:00")
        assert moved.status_code == 200
        assert moved.json() == {"ok": True, "now": "2026-11-24T15:44:00-05:00", "simulated": True}
        late = decimal_json(client.get(CHART, symbol="AAPL", **window))
        # The same bar, further formed: same open, wider high/low, more volume. (The close
        # carries a jitter of about its drift over 90 seconds, so it may keep its cent.)
        assert late[0]["date"] == early[0]["date"] and late[0]["open"] == early[0]["open"]
        for name in ("high", "low"):
            assert late[0][name] != early[0][name]
        assert late[0]["high"] >= early[0]["high"] and late[0]["low"] <= early[0]["low"]
        assert late[0]["volume"] > early[0]["volume"]
        assert late[1:] == early[1:]  # finished bars do not move

        # The helper does the same, in any time zone; after 15:45 New York the bar is done.
        client.server.set_clock(datetime(2026, 11, 24, 20, 47, tzinfo=UTC))
        done = decimal_json(client.get(CHART, symbol="AAPL", **window))
        assert [b["date"][11:] for b in done[:2]] == ["15:45:00", "15:40:00"]
        whole_day = simulated_intraday_bars("AAPL", day, day, seed=5, now=datetime(2026, 11, 25))
        assert done[1:] == whole_day[-len(done) + 1 :]
        assert client.server.stats()["clock"] == "2026-11-24T20:47:00+00:00"

        # Reset clears counters, not the clock; admin calls are not API requests.
        assert client.server.stats()["requests_total"] == 4
        client.admin("POST", "reset")
        assert decimal_json(client.get(CHART, symbol="AAPL", **window)) == done
        assert client.server.stats()["requests_total"] == 1

        back = set_clock(client, None).json()
        assert back["simulated"] is False and client.server.stats()["clock"] is None
        assert abs(datetime.fromisoformat(back["now"]) - datetime.now(UTC)) < timedelta(minutes=1)


def test_bad_clocks_are_refused() -> None:
    naive = datetime(2026, 11, 24, 15, 42, 30)
    with pytest.raises(ValueError, match="time zone"):
        SandboxConfig(clock=naive)
    with sandbox() as client:
        with pytest.raises(ValueError, match="time zone"):
            client.server.set_clock(naive)
        for body in (
            {"now": "2026-11-24T15:42:30"},  # naive
            {"now": "yesterday"},
            {"now": 1764017000},
            {"then": "2026-11-24T15:42:30-05:00"},
            ["2026-11-24T15:42:30-05:00"],
        ):
            response = client.session.post(
                f"{client.server.url}/_sandbox/clock", json=body, timeout=5
            )
            assert response.status_code == 400, body
            assert "Error Message" in response.json()
        not_json = client.session.post(
            f"{client.server.url}/_sandbox/clock", data="{now:", timeout=5
        )
        assert not_json.status_code == 400
        assert client.admin("GET", "clock")["simulated"] is False
        assert client.server.stats()["requests_total"] == 0


def test_the_clock_ends_the_daily_history_and_the_quota_day() -> None:
    clock = datetime(2026, 3, 4, 12, 0, tzinfo=NEW_YORK)
    with sandbox(FaultConfig(daily_quota=3), clock=clock) as client:
        asked = {"from": "2026-02-25", "to": "2026-12-31"}
        bars = decimal_json(client.get(EOD, symbol="MSFT", **asked))
        assert [b["date"] for b in bars[:2]] == ["2026-03-04", "2026-03-03"]
        assert bars == simulated_daily_bars("MSFT", date(2026, 2, 25), date(2026, 3, 4))
        default = decimal_json(client.get(EOD, symbol="MSFT"))  # five years to the clock's day
        assert default[0]["date"] == "2026-03-04"
        assert default[-1]["date"] == "2021-03-04"
        assert client.get(EOD, symbol="MSFT", **asked).status_code == 200
        assert client.get(EOD, symbol="MSFT", **asked).status_code == 429  # quota spent

        # Two days on: a new New York day, so a fresh quota, and two more sessions.
        client.server.set_clock(clock + timedelta(days=2))
        later = decimal_json(client.get(EOD, symbol="MSFT", **asked))
        assert [b["date"] for b in later[:3]] == ["2026-03-06", "2026-03-05", "2026-03-04"]
        assert later[2:] == bars
        assert client.server.stats()["quota_used"] == 1


# --- capacity and CLI -------------------------------------------------------------------


def test_hundreds_of_concurrent_slow_requests() -> None:
    with sandbox(latency_ms=200) as client:
        url = client.server.url + QUOTE

        def fetch(i: int) -> int:
            params = {"symbol": SYMBOLS[i % len(SYMBOLS)], "apikey": KEY}
            return requests.get(url, params=params, timeout=10).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=300) as pool:
            codes = list(pool.map(fetch, range(300)))
        elapsed = time.monotonic() - started
        assert codes == [200] * 300
        assert elapsed < 5, elapsed
        assert client.server.stats()["requests_total"] == 300


def test_cli_serves_in_a_subprocess() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quote_pipeline.sandbox",
            "--port",
            "0",
            "--premium",
            "--api-key",
            "k1",
            "--unknown-symbols",
            "GONE",
            "--clock",
            "2026-11-24T15:42:30-05:00",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))
        reader.start()
        reader.join(20)
        assert lines, "the sandbox never printed its listening line"
        match = re.fullmatch(r"FMP sandbox listening on (http://127\.0\.0\.1:(\d+))\n", lines[0])
        assert match and int(match.group(2)) > 0
        url = match.group(1)
        rows = requests.get(
            f"{url}{BATCH}", params={"symbols": "AAPL,GONE", "apikey": "k1"}, timeout=5
        ).json()
        assert [r["symbol"] for r in rows] == ["AAPL"]
        chart = requests.get(f"{url}{CHART}", params={"symbol": "AAPL", "apikey": "k1"}, timeout=5)
        assert chart.json()[0]["date"] == "2026-11-24 15:40:00"  # forming at the --clock time
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_parser_and_loopback_guard() -> None:
    import argparse

    from quote_pipeline.sandbox.command import add_sandbox_parser, config_from_args, run_sandbox

    parser = argparse.ArgumentParser(prog="quote-pipeline")
    add_sandbox_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "sandbox",
            "--port",
            "0",
            "--seed",
            "5",
            "--server-error-rate",
            "0.25",
            "--hang-symbols",
            "a,b",
            "--hang-symbols",
            "c",
            "--calls-per-minute",
            "300",
            "--limit-reach-in-200",
            "--latency-ms",
            "15",
        ]
    )
    assert args.func is run_sandbox
    config = config_from_args(args)
    assert config.seed == 5 and config.latency_ms == 15 and not config.premium
    assert config.faults.hang_symbols == {"A", "B", "C"}
    assert config.faults.server_error_rate == 0.25 and config.faults.calls_per_minute == 300
    assert config.faults.limit_reach_in_200
    assert config.clock is None
    args = parser.parse_args(["sandbox", "--clock", "2026-11-24T20:42:30Z"])
    assert config_from_args(args).clock == datetime(2026, 11, 24, 15, 42, 30, tzinfo=NEW_YORK)
    for bad_clock in ("2026-11-24T15:42:30", "noon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sandbox", "--clock", bad_clock])
    args = parser.parse_args(["sandbox", "--host", "0.0.0.0", "--port", "0"])
    assert args.func(args) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["sandbox", "--rate-limit-rate", "1.5"])
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(host="192.168.1.10")
