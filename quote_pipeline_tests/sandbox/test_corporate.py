"""The sandbox's profiles, splits, dividends and the three daily history variants, tested over
real HTTP on a loopback port."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
import requests

from quote_pipeline.sandbox import (
    FaultConfig,
    GateMap,
    SandboxConfig,
    SandboxServer,
    company_profile,
    simulated_daily_bars,
    simulated_dividend_adjusted_bars,
    simulated_dividends,
    simulated_raw_daily_bars,
    simulated_splits,
)
from quote_pipeline.sandbox.command import add_sandbox_parser, config_from_args
from quote_pipeline.sandbox.corporate import cusip_check, isin_check
from quote_pipeline.sandbox.market import NEW_YORK, REFERENCE_PRICES, simulated_quote
from quote_pipeline.sandbox.server import (
    INVALID_KEY_MESSAGE,
    LIMIT_MESSAGE,
    PLAN_GATED_MESSAGE,
)

KEY = "sandbox-key"
PROFILE = "/stable/profile"
SPLITS = "/stable/splits"
DIVIDENDS = "/stable/dividends"
FULL = "/stable/historical-price-eod/full"
RAW = "/stable/historical-price-eod/non-split-adjusted"
DIV_ADJ = "/stable/historical-price-eod/dividend-adjusted"
EOD_VARIANTS = (FULL, RAW, DIV_ADJ)
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=NEW_YORK)  # a Tuesday afternoon
TODAY = NOW.date()
PROFILE_FIELDS = [
    "symbol", "price", "marketCap", "beta", "lastDividend", "range", "change",
    "changePercentage", "volume", "averageVolume", "companyName", "currency", "cik", "isin",
    "cusip", "exchangeFullName", "exchange", "industry", "website", "description", "ceo",
    "sector", "country", "fullTimeEmployees", "phone", "address", "city", "state", "zip",
    "image", "ipoDate", "defaultImage", "isEtf", "isActivelyTrading", "isAdr", "isFund",
]  # fmt: skip
SPLIT_FIELDS = ["symbol", "date", "numerator", "denominator", "splitType"]
DIVIDEND_FIELDS = [
    "symbol", "date", "recordDate", "paymentDate", "declarationDate", "adjDividend",
    "dividend", "yield", "frequency",
]  # fmt: skip
ADJ_FIELDS = ["symbol", "date", "adjOpen", "adjHigh", "adjLow", "adjClose", "volume"]
OHLC = ("open", "high", "low", "close")
ADJ = {"open": "adjOpen", "high": "adjHigh", "low": "adjLow", "close": "adjClose"}
ETFS = {"SPY", "QQQ", "DIA", "IWM", "VOO", "VTI"}
MADE_UP = [f"T{i:03d}" for i in range(400)]


@dataclass
class Client:
    server: SandboxServer
    session: requests.Session

    def get(self, path: str, *, key: str | None = KEY, **params: Any) -> requests.Response:
        if key is not None:
            params["apikey"] = key
        return self.session.get(self.server.url + path, params=params, timeout=10)

    def rows(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return json.loads(response.text, parse_float=Decimal)

    def set_clock(self, now: str) -> None:
        url = f"{self.server.url}/_sandbox/clock"
        assert self.session.post(url, json={"now": now}, timeout=5).status_code == 200


@contextlib.contextmanager
def sandbox(faults: FaultConfig | None = None, **config: Any) -> Iterator[Client]:
    config.setdefault("clock", NOW)
    cfg = SandboxConfig(faults=faults or FaultConfig(), **config)
    with SandboxServer(cfg) as server, requests.Session() as session:
        yield Client(server, session)


@pytest.fixture(scope="module")
def basic() -> Iterator[Client]:
    with sandbox(seed=3) as client:
        yield client


def window(first: str, last: str) -> dict[str, str]:
    return {"from": first, "to": last}


def without_actions(seed: int = 0) -> list[str]:
    """Made-up symbols with neither splits nor dividends."""
    return [
        s
        for s in MADE_UP[:80]
        if not simulated_splits(s, seed=seed, as_of=TODAY)
        and not simulated_dividends(s, seed=seed, as_of=TODAY)
    ]


# --- profile ------------------------------------------------------------------------------


def test_profile_has_fmps_fields_in_order_and_is_deterministic(basic: Client) -> None:
    response = basic.get(PROFILE, symbol="AAPL")
    assert response.headers["Content-Type"].startswith("application/json")
    [row] = json.loads(response.text, parse_float=Decimal)
    assert list(row) == PROFILE_FIELDS
    assert row == company_profile("AAPL", seed=3, as_of=TODAY)
    assert basic.rows(PROFILE, symbol="aapl") == [row]  # same again, any spelling
    assert row["price"] == simulated_quote("AAPL", seed=3)["price"]
    assert (row["companyName"], row["exchange"], row["sector"]) == (
        "Apple Inc.",
        "NASDAQ",
        "Technology",
    )
    assert (row["country"], row["currency"], row["isEtf"], row["isActivelyTrading"]) == (
        "US",
        "USD",
        False,
        True,
    )
    # FMP's types: marketCap an integer, cik and fullTimeEmployees strings, range "low-high".
    assert isinstance(row["marketCap"], int) and row["marketCap"] > 10**12
    assert isinstance(row["cik"], str) and len(row["cik"]) == 10 and row["cik"].isdigit()
    assert isinstance(row["fullTimeEmployees"], str) and row["fullTimeEmployees"].isdigit()
    low, high = (Decimal(p) for p in row["range"].split("-"))
    assert low < high
    assert isinstance(row["beta"], Decimal) and isinstance(row["lastDividend"], Decimal)
    assert row["lastDividend"] > 0  # AAPL pays
    assert '"marketCap":' + str(row["marketCap"]) + "," in response.text
    assert row["image"] == "https://images.financialmodelingprep.com/symbol/AAPL.png"


def test_well_known_profiles_name_real_companies() -> None:
    etfs = set()
    for symbol in REFERENCE_PRICES:
        row = company_profile(symbol, as_of=TODAY)
        if symbol.startswith("^") or symbol.endswith(("USD", "=X")):
            assert row["exchange"] in {"INDEX", "CRYPTO", "FOREX"} and row["sector"] == ""
            continue
        assert row["exchange"] in {"NASDAQ", "NYSE", "AMEX"}, symbol
        assert row["country"] == "US" and row["currency"] == "USD"
        assert row["companyName"] and row["ipoDate"] and row["website"].startswith("https://")
        if row["isEtf"]:
            etfs.add(symbol)
            assert (row["sector"], row["industry"]) in {
                ("Financial Services", "Asset Management"),
                ("", ""),
            }
        else:
            assert row["sector"] and row["industry"], symbol
    assert etfs == ETFS
    assert company_profile("MSFT", as_of=TODAY)["companyName"] == "Microsoft Corporation"
    assert company_profile("KO", as_of=TODAY)["exchange"] == "NYSE"
    assert company_profile("BRK.B", as_of=TODAY)["companyName"] == "Berkshire Hathaway Inc."


def test_made_up_profiles_are_plausible_with_fmps_empty_strings() -> None:
    rows = [company_profile(s, as_of=TODAY) for s in MADE_UP[:120]]
    for row in rows:
        assert row["exchange"] in {"NASDAQ", "NYSE"}
        assert row["companyName"].endswith(("Inc.", "Corporation", "Corp.", "Co."))
        assert row["sector"] and row["industry"] and row["description"].endswith(".")
        assert len(row["cik"]) == 10 and row["cik"].isdigit()
        cusip, isin = row["cusip"], row["isin"]
        assert len(cusip) == 9 and cusip_check(cusip[:8]) == int(cusip[8])
        assert isin == f"US{cusip}{isin[-1]}" and isin_check(isin[:11]) == int(isin[11])
    # Some profiles leave ipoDate or website empty, as FMP's do; most do not.
    blank_ipo = [r for r in rows if r["ipoDate"] == ""]
    blank_web = [r for r in rows if r["website"] == ""]
    assert 0 < len(blank_ipo) < 30 and 0 < len(blank_web) < 30
    assert all(date.fromisoformat(r["ipoDate"]) for r in rows if r["ipoDate"])
    # The documented check digits of Apple's identifiers.
    assert cusip_check("03783310") == 0 and isin_check("US037833100") == 5
    assert company_profile(MADE_UP[7]) == company_profile(MADE_UP[7])


def test_profile_unknown_inactive_and_empty_string_over_http() -> None:
    quirky = next(s for s in MADE_UP if company_profile(s, as_of=TODAY)["ipoDate"] == "")
    faults = FaultConfig(unknown_symbols={"GONE"}, inactive_symbols={"T001"})
    with sandbox(faults) as client:
        assert client.rows(PROFILE, symbol="GONE") == []
        assert client.rows(PROFILE, symbol="NOT A SYMBOL!") == []
        assert client.rows(PROFILE, symbol="T001")[0]["isActivelyTrading"] is False
        assert client.rows(PROFILE, symbol="T002")[0]["isActivelyTrading"] is True
        assert '"ipoDate":""' in client.get(PROFILE, symbol=quirky).text


# --- splits -------------------------------------------------------------------------------


def test_splits_newest_first_with_limit(basic: Client) -> None:
    rows = basic.rows(SPLITS, symbol="AAPL")
    assert rows == [
        {"symbol": "AAPL", "date": d, "numerator": n, "denominator": 1, "splitType": "stock-split"}
        for d, n in (("2020-08-31", 4), ("2014-06-09", 7), ("2005-02-28", 2))
    ]
    assert '"numerator":4,"denominator":1' in basic.get(SPLITS, symbol="AAPL").text
    assert basic.rows(SPLITS, symbol="AAPL", limit=1) == rows[:1]
    assert basic.rows(SPLITS, symbol="MSFT") == []  # no split since 2003
    reverse = basic.rows(SPLITS, symbol="GE")
    assert [(r["numerator"], r["denominator"]) for r in reverse] == [(1, 8)]
    bad = basic.get(SPLITS, symbol="AAPL", limit="ten")
    assert bad.status_code == 400 and bad.text == LIMIT_MESSAGE


def test_generated_splits_are_rare_dated_and_of_usual_ratios() -> None:
    with_splits = {s: simulated_splits(s, seed=0, as_of=TODAY) for s in MADE_UP}
    with_splits = {s: rows for s, rows in with_splits.items() if rows}
    assert 20 <= len(with_splits) <= 64  # about one in ten
    ratios = set()
    for rows in with_splits.values():
        assert 1 <= len(rows) <= 2 and list(rows[0]) == SPLIT_FIELDS
        assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
        for row in rows:
            assert "2005-01-01" <= row["date"] <= "2026-12-31"
            assert date.fromisoformat(row["date"]).weekday() < 5
            ratios.add((row["numerator"], row["denominator"]))
    allowed = {(2, 1), (3, 1), (3, 2), (4, 1), (7, 1), (10, 1), (1, 5), (1, 8), (1, 10)}
    assert ratios <= allowed and len(ratios) > 4
    assert any(n < d for n, d in ratios)  # some reverse splits
    assert simulated_splits("T002", seed=0) != simulated_splits("T002", seed=1) or any(
        simulated_splits(s, seed=0) != simulated_splits(s, seed=1) for s in MADE_UP[:50]
    )
    for extreme in ("XBIGPRICE", "XDUSTPRICE"):
        assert simulated_splits(extreme) == [] and simulated_dividends(extreme) == []


def test_injected_splits_replace_and_appear_on_their_ex_date() -> None:
    splits = (("AAPL", date(2026, 12, 7), 3, 2), ("T000", date(2026, 11, 30), 1, 10))
    with sandbox(splits=splits) as client:
        # Known from the ex-date on: before it, AAPL lists none of its (real) splits.
        assert client.rows(SPLITS, symbol="AAPL") == []
        assert client.rows(SPLITS, symbol="T000") == []
        client.set_clock("2026-11-30T09:00:00-05:00")
        assert client.rows(SPLITS, symbol="T000") == [
            {
                "symbol": "T000",
                "date": "2026-11-30",
                "numerator": 1,
                "denominator": 10,
                "splitType": "stock-split",
            }
        ]
        assert client.rows(SPLITS, symbol="AAPL") == []
        client.set_clock("2026-12-07T00:30:00-05:00")
        [row] = client.rows(SPLITS, symbol="AAPL")
        assert (row["date"], row["numerator"], row["denominator"]) == ("2026-12-07", 3, 2)
    # The config keeps them as a hashable tuple of Decimals.
    config = SandboxConfig(splits=[("aapl", date(2026, 12, 7), "1.5", 1)])
    assert config.splits == (("AAPL", date(2026, 12, 7), Decimal("1.5"), Decimal(1)),)
    assert hash(config) == hash(SandboxConfig(splits=config.splits))
    assert simulated_splits("AAPL", as_of=date(2027, 1, 1), injected=config.splits)[0][
        "numerator"
    ] == Decimal("1.5")
    for bad in (
        [("AAPL", date(2026, 1, 5), 0, 1)],
        [("XBIGPRICE", date(2026, 1, 5), 2, 1)],
        [("AAPL", "2026-01-05", 2, 1)],
        [("AAPL", date(2026, 1, 5), 2, 1), ("AAPL", date(2026, 1, 5), 3, 1)],
    ):
        with pytest.raises(ValueError):
            SandboxConfig(splits=bad)


# --- dividends ----------------------------------------------------------------------------


def test_dividends_of_a_large_cap(basic: Client) -> None:
    rows = basic.rows(DIVIDENDS, symbol="KO")
    assert rows == simulated_dividends("KO", seed=3, as_of=TODAY)
    assert len(rows) > 60 and list(rows[0]) == DIVIDEND_FIELDS
    dates = [r["date"] for r in rows]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == len(dates)
    assert rows[-1]["date"] < "2006-01-01"  # years of history
    assert {r["frequency"] for r in rows} == {"Quarterly"}
    # A deterministic minority of rows leave a date empty, as FMP's do.
    blanks = [r for r in rows if "" in (r["recordDate"], r["paymentDate"], r["declarationDate"])]
    assert 0 < len(blanks) < len(rows) // 2
    for row in rows:
        if row["declarationDate"]:
            assert row["declarationDate"] <= TODAY.isoformat()  # known by the clock's date
            assert row["declarationDate"] < row["date"]
        # adjDividend is the dividend over KO's later splits (2:1 on 2012-08-13).
        ratio = 2 if row["date"] < "2012-08-13" else 1
        assert row["adjDividend"] == (row["dividend"] / ratio).quantize(Decimal("0.000001"))
        # About 0.3% to 1% of the price a quarter: the yield is annualised, in percent.
        assert Decimal("1") < row["yield"] < Decimal("4.5"), row
    assert basic.rows(DIVIDENDS, symbol="KO", limit=3) == rows[:3]
    assert basic.rows(DIVIDENDS, symbol="AMZN") == []
    assert {r["frequency"] for r in simulated_dividends("DIA", as_of=TODAY)} == {"Monthly"}
    assert {r["frequency"] for r in simulated_dividends("DIS", as_of=TODAY)} == {"Semi-Annual"}
    assert simulated_dividends("SPY", as_of=TODAY) and simulated_dividends("BTCUSD") == []


def test_about_a_third_of_made_up_symbols_pay_quarterly() -> None:
    payers = [s for s in MADE_UP if simulated_dividends(s, as_of=TODAY)]
    assert 0.2 * len(MADE_UP) < len(payers) < 0.4 * len(MADE_UP)
    # About 0.3% to 1% of the price a quarter; a made-up symbol's price drifts more within a
    # year (the amount is set once a year) than a well-known one's.
    well_known = ["AAPL", "KO", "JPM", "XOM", "SPY", "QQQ"]
    for symbol in payers[:10] + well_known:
        rows = simulated_dividends(symbol, as_of=TODAY)
        assert {r["frequency"] for r in rows} == {"Quarterly"}
        raw = simulated_raw_daily_bars(symbol, TODAY - timedelta(days=400), TODAY)
        closes = {r["date"]: r["adjClose"] for r in raw}
        low, high = ("0.002", "0.012") if symbol in well_known else ("0.001", "0.02")
        for row in rows[:4]:
            before = max(d for d in closes if d < row["date"])
            share = row["dividend"] / closes[before]
            assert Decimal(low) < share < Decimal(high), (symbol, row)


def test_injected_dividends_replace_adjust_for_splits_and_show_once_declared() -> None:
    dividends = (
        ("T000", date(2026, 5, 14), Decimal("0.40")),
        ("T000", date(2026, 8, 13), Decimal("0.44")),
        ("T000", date(2026, 12, 3), Decimal("0.12")),  # declared 2026-11-19: listed
        ("T000", date(2027, 3, 4), Decimal("0.12")),  # declared 2027-02-18: not yet
    )
    splits = (("T000", date(2026, 9, 1), 4, 1),)
    with sandbox(dividends=dividends, splits=splits) as client:
        rows = client.rows(DIVIDENDS, symbol="T000")
        assert [(r["date"], r["dividend"], r["adjDividend"]) for r in rows] == [
            ("2026-12-03", Decimal("0.12"), Decimal("0.12")),
            ("2026-08-13", Decimal("0.44"), Decimal("0.11")),
            ("2026-05-14", Decimal("0.40"), Decimal("0.1")),
        ]
        assert rows[0]["declarationDate"] == "2026-11-19"
        assert rows[0]["recordDate"] == "2026-12-03"
        assert {r["frequency"] for r in rows} == {"Quarterly"}
        client.set_clock("2027-02-18T08:00:00-05:00")
        assert client.rows(DIVIDENDS, symbol="T000")[0]["date"] == "2027-03-04"
        # The yield: the annualised dividend over the raw close before the ex-date.
        raw = client.rows(RAW, symbol="T000", **window("2026-08-10", "2026-08-12"))
        expected = Decimal("0.44") * 4 * 100 / raw[0]["adjClose"]
        assert abs(rows[1]["yield"] - expected) < Decimal("1e-9")


# --- the three daily history variants -----------------------------------------------------


def check_full_row(row: dict[str, Any]) -> None:
    assert row["change"] == row["close"] - row["open"]
    assert row["vwap"] == sum(row[k] for k in OHLC) / 4
    assert row["low"] <= min(row["open"], row["close"]) <= max(row["open"], row["close"])
    assert row["high"] >= max(row["open"], row["close"])


def test_variants_agree_for_a_symbol_without_actions(basic: Client) -> None:
    symbol = without_actions(seed=3)[0]
    params = {"symbol": symbol, **window("2026-10-01", "2026-11-30")}
    full = basic.rows(FULL, **params)
    raw = basic.rows(RAW, **params)
    adjusted = basic.rows(DIV_ADJ, **params)
    assert full[0]["date"] == TODAY.isoformat()  # nothing after the clock's date
    assert len(full) == len(raw) == len(adjusted) > 35
    for f, r, a in zip(full, raw, adjusted, strict=True):
        assert list(r) == list(a) == ADJ_FIELDS  # no open/close/change/vwap
        assert (
            r
            == a
            == {
                "symbol": symbol,
                "date": f["date"],
                **{ADJ[k]: f[k] for k in OHLC},
                "volume": f["volume"],
            }
        )
    assert full == simulated_daily_bars(symbol, date(2026, 10, 1), TODAY, seed=3)


def test_a_forward_split_rebases_full_when_the_clock_passes_it() -> None:
    symbol = without_actions()[1]
    ex = date(2026, 3, 9)  # a Monday
    splits = ((symbol, ex, 4, 1),)
    params = {"symbol": symbol, **window("2026-03-02", "2026-03-13")}
    with sandbox(splits=splits, clock=datetime(2026, 3, 6, 17, 0, tzinfo=NEW_YORK)) as client:
        before = client.rows(FULL, **params)
        assert before[0]["date"] == "2026-03-06"
        raw_before = client.rows(RAW, **params)
        # Before the ex-date nothing is known yet: full is the raw (traded) series.
        assert [{ADJ[k]: b[k] for k in OHLC} for b in before] == [
            {ADJ[k]: r[ADJ[k]] for k in OHLC} for r in raw_before
        ]
        assert client.rows(SPLITS, symbol=symbol) == []

        client.set_clock("2026-03-20T12:00:00-04:00")
        raw = client.rows(RAW, **params)
        full = client.rows(FULL, **params)
        assert raw[-len(raw_before) :] == raw_before  # the traded series never changes
        by_day = {r["date"]: r for r in raw}
        # The traded price drops about 4x on the ex-date.
        jump = by_day["2026-03-06"]["adjClose"] / by_day["2026-03-09"]["adjOpen"]
        assert Decimal("3.5") < jump < Decimal("4.6")
        for row in full:
            check_full_row(row)
            traded = by_day[row["date"]]
            ratio = 4 if row["date"] < ex.isoformat() else 1
            for k in OHLC:
                assert row[k] == traded[ADJ[k]] / ratio
            assert row["volume"] == traded["volume"] * ratio
        # Earlier days changed with the clock: the split is now known.
        assert {b["date"]: b["close"] for b in before} != {
            f["date"]: f["close"] for f in full if f["date"] <= "2026-03-06"
        }
        assert full == simulated_daily_bars(
            symbol,
            date(2026, 3, 2),
            date(2026, 3, 13),
            as_of=date(2026, 3, 20),
            injected_splits=splits,
        )
        assert raw == simulated_raw_daily_bars(
            symbol, date(2026, 3, 2), date(2026, 3, 13), injected_splits=splits
        )
        # A re-basing asks nothing of the server but the history itself.
        counts = client.server.stats()["by_endpoint"]
        assert counts == {FULL: 2, RAW: 2, SPLITS: 1}


def test_a_reverse_split_shows_in_the_traded_series() -> None:
    ex = date(2026, 6, 15)
    splits = (("KO", ex, 1, 10),)  # replaces KO's real 2:1 of 2012
    params = {"symbol": "KO", **window("2026-06-08", "2026-06-19")}
    with sandbox(splits=splits) as client:
        raw = {r["date"]: r for r in client.rows(RAW, **params)}
        full = client.rows(FULL, **params)
        assert client.rows(SPLITS, symbol="KO") == [
            {
                "symbol": "KO",
                "date": "2026-06-15",
                "numerator": 1,
                "denominator": 10,
                "splitType": "stock-split",
            }
        ]
    jump = raw["2026-06-15"]["adjOpen"] / raw["2026-06-12"]["adjClose"]
    assert Decimal("8.5") < jump < Decimal("11.5")  # ten old shares became one
    for row in full:
        check_full_row(row)
        traded = raw[row["date"]]
        if row["date"] < ex.isoformat():
            assert all(row[k] == traded[ADJ[k]] * 10 for k in OHLC)
            assert row["volume"] == round(Fraction(traded["volume"], 10))
        else:
            assert all(row[k] == traded[ADJ[k]] for k in OHLC)
            assert row["volume"] == traded["volume"]


def test_the_real_aapl_split_as_fmp_shows_it(basic: Client) -> None:
    params = {"symbol": "AAPL", **window("2020-08-28", "2020-08-31")}
    raw = basic.rows(RAW, **params)
    full = basic.rows(FULL, **params)
    assert [r["date"] for r in raw] == ["2020-08-31", "2020-08-28"]
    assert raw[1]["adjOpen"] == full[1]["open"] * 4  # FMP: 504.04 traded, 126.01 in full
    assert full[1]["volume"] == raw[1]["volume"] * 4
    assert raw[0]["adjOpen"] == full[0]["open"]


def dividend_adjusted(price: Decimal, factor: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 60
        return (price * factor).quantize(Decimal("0.0001"))


def test_dividend_adjusted_follows_the_formula() -> None:
    symbol = without_actions()[2]
    dividends = (
        (symbol, date(2026, 2, 12), Decimal("0.35")),
        (symbol, date(2026, 5, 14), Decimal("0.36")),
        (symbol, date(2026, 8, 13), Decimal("0.09")),  # after the split: in new shares
        (symbol, date(2026, 12, 10), Decimal("0.09")),  # after the clock: no effect yet
    )
    splits = ((symbol, date(2026, 6, 1), 4, 1),)
    start, end = date(2026, 1, 2), TODAY
    with sandbox(dividends=dividends, splits=splits) as client:
        params = {"symbol": symbol, **window(start.isoformat(), end.isoformat())}
        raw = client.rows(RAW, **params)
        adjusted = client.rows(DIV_ADJ, **params)
        full = client.rows(FULL, **params)
    assert adjusted == simulated_dividend_adjusted_bars(
        symbol, start, end, as_of=TODAY, injected_splits=splits, injected_dividends=dividends
    )
    closes = {r["date"]: r["adjClose"] for r in raw}

    def close_before(day: date) -> Decimal:
        return closes[max(d for d in closes if d < day.isoformat())]

    paid = [(d.isoformat(), amount, close_before(d)) for _, d, amount in dividends[:3]]
    for r, a, f in zip(raw, adjusted, full, strict=True):
        assert list(a) == ADJ_FIELDS and a["volume"] == f["volume"]
        factor = Decimal(1)
        with localcontext() as context:
            context.prec = 60
            for ex, amount, close in paid:
                if r["date"] < ex:
                    factor *= 1 - amount / close
            if r["date"] < "2026-06-01":
                factor /= 4
        for k in OHLC:
            assert a[ADJ[k]] == dividend_adjusted(r[ADJ[k]], factor), (r["date"], k)
        if r["date"] >= "2026-08-13":
            assert {k: a[k] for k in ADJ.values()} == {k: r[k] for k in ADJ.values()}


# --- faults, gating, log ------------------------------------------------------------------


def test_faults_apply_to_the_new_endpoints() -> None:
    faults = FaultConfig(
        unknown_symbols={"GONE"},
        plan_gated_symbols={"VIP"},
        error_body_symbols={"OOPS"},
        malformed_symbols={"CUT"},
        bad_shape_symbols={"AAPL"},
        server_error_symbols={"DOWN"},
    )
    paths = (PROFILE, SPLITS, DIVIDENDS, *EOD_VARIANTS)
    recent = window("2026-11-16", "2026-11-20")
    with sandbox(faults) as client:
        for path in paths:
            assert client.rows(path, symbol="GONE", **recent) == [], path
            gated = client.get(path, symbol="VIP", **recent)
            assert gated.status_code == 402
            assert gated.json() == {"Error Message": PLAN_GATED_MESSAGE}
            oops = client.get(path, symbol="OOPS", **recent)
            assert oops.status_code == 200 and set(oops.json()) == {"Error Message"}
            cut = client.get(path, symbol="CUT", **recent)
            assert cut.status_code == 200 and cut.text.startswith("[")
            with pytest.raises(json.JSONDecodeError):
                json.loads(cut.text)
            assert client.get(path, symbol="DOWN", **recent).status_code >= 500
            assert client.get(path, key="wrong", symbol="AAPL").json() == {
                "Error Message": INVALID_KEY_MESSAGE
            }
            missing = client.get(path)
            assert missing.status_code == 400 and "symbol" in missing.json()["Error Message"]
            broken = client.rows(path, symbol="AAPL", **recent)
            clean = {
                PROFILE: [company_profile("AAPL", as_of=TODAY)],
                SPLITS: simulated_splits("AAPL", as_of=TODAY),
                DIVIDENDS: simulated_dividends("AAPL", as_of=TODAY),
                FULL: simulated_daily_bars("AAPL", date(2026, 11, 16), date(2026, 11, 20)),
                RAW: simulated_raw_daily_bars("AAPL", date(2026, 11, 16), date(2026, 11, 20)),
                DIV_ADJ: simulated_dividend_adjusted_bars(
                    "AAPL", date(2026, 11, 16), date(2026, 11, 20), as_of=TODAY
                ),
            }[path]
            assert broken and len(broken) == len(clean) and broken != clean, path
        stats = client.server.stats()
        # The log names each endpoint by its path, so requests can be counted per endpoint.
        assert stats["by_endpoint"] == dict.fromkeys(paths, 8)
        logged = [r for r in stats["requests"] if r["path"] == SPLITS]
        assert [r["symbols"] for r in logged[:2]] == [["GONE"], ["VIP"]]
    with sandbox(FaultConfig(rate_limit_rate=1.0)) as client:
        assert client.get(PROFILE, symbol="AAPL").status_code == 429
    with sandbox(FaultConfig(daily_quota=1)) as client:
        assert client.get(DIVIDENDS, symbol="KO").status_code == 200
        assert client.get(SPLITS, symbol="KO").status_code == 429


def test_a_symbol_can_be_refused_on_one_endpoint_only() -> None:
    gates = {"dividends": ["PG"], "eod": ["ko"], "profile": "T001,T002"}
    faults = FaultConfig(endpoint_gated_symbols=gates)
    assert faults.endpoint_gated_symbols == {
        "dividends": {"PG"},
        "eod": {"KO"},
        "profile": {"T001", "T002"},
    }
    assert isinstance(faults.endpoint_gated_symbols, GateMap)
    assert hash(faults) == hash(FaultConfig(endpoint_gated_symbols=gates))
    with sandbox(faults) as client:
        refused = client.get(DIVIDENDS, symbol="PG")
        assert refused.status_code == 402
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert refused.text == PLAN_GATED_MESSAGE
        with pytest.raises(json.JSONDecodeError):
            json.loads(refused.text)
        assert client.rows(PROFILE, symbol="PG")[0]["companyName"].startswith("The Procter")
        assert client.rows(DIVIDENDS, symbol="KO")
        for path in EOD_VARIANTS:
            assert client.get(path, symbol="KO").status_code == 402
        assert client.get("/stable/quote-short", symbol="KO").status_code == 200
        assert client.get(PROFILE, symbol="T002").status_code == 402
        assert client.get(SPLITS, symbol="T002").status_code == 200
    only_raw = FaultConfig(endpoint_gated_symbols={"eod-non-split-adjusted": ["KO"]})
    with sandbox(only_raw) as client:
        assert client.get(RAW, symbol="KO").status_code == 402
        assert client.get(FULL, symbol="KO").status_code == 200
    with pytest.raises(ValueError, match="unknown endpoint"):
        FaultConfig(endpoint_gated_symbols={"earnings": ["PG"]})


# --- CLI ----------------------------------------------------------------------------------


def sandbox_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quote-pipeline")
    add_sandbox_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_flags_build_the_config() -> None:
    args = sandbox_parser().parse_args(
        [
            "sandbox",
            *("--split", "AAPL:2026-12-07:3:2", "--split", "ko:2026-06-15:1:10"),
            *("--dividend", "KO:2026-09-15:0.51", "--dividend", "T000:2026-12-03:0.12"),
            *("--gate", "dividends:PG,KO", "--gate", "dividends:JNJ", "--gate", "eod:T001"),
            *("--inactive", "T005,t006", "--inactive", "T007"),
        ]
    )
    config = config_from_args(args)
    assert config.splits == (
        ("AAPL", date(2026, 12, 7), Decimal(3), Decimal(2)),
        ("KO", date(2026, 6, 15), Decimal(1), Decimal(10)),
    )
    assert config.dividends == (
        ("KO", date(2026, 9, 15), Decimal("0.51")),
        ("T000", date(2026, 12, 3), Decimal("0.12")),
    )
    assert config.faults.endpoint_gated_symbols == {
        "dividends": {"PG", "KO", "JNJ"},
        "eod": {"T001"},
    }
    assert config.faults.inactive_symbols == {"T005", "T006", "T007"}
    hash(config)
    plain = config_from_args(sandbox_parser().parse_args(["sandbox"]))
    assert plain.splits == () and plain.dividends == () and not plain.faults.endpoint_gated_symbols


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--split", "AAPL:2020-08-31:4", "expected SYM:YYYY-MM-DD:NUM:DEN"),
        ("--split", "AAPL:2020-13-31:4:1", "not a YYYY-MM-DD date"),
        ("--split", "AAPL:2020-08-31:0:1", "positive"),
        ("--split", "AAPL:2020-08-31:four:1", "not a number"),
        ("--split", "XBIGPRICE:2020-08-31:4:1", "never has splits"),
        ("--dividend", "KO:2026-09-15", "expected SYM:YYYY-MM-DD:AMOUNT"),
        ("--dividend", "KO:2026-09-15:-1", "positive"),
        ("--dividend", ":2026-09-15:0.5", "needs a symbol"),
        ("--gate", "earnings:PG", "unknown endpoint"),
        ("--gate", "dividends:", "expected ENDPOINT:SYM"),
    ],
)
def test_cli_flag_errors_are_one_line(
    flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sandbox_parser().parse_args(["sandbox", flag, value])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and flag in errors[0] and says in errors[0], errors


def test_cli_duplicate_split_is_refused() -> None:
    args = sandbox_parser().parse_args(
        ["sandbox", "--split", "AAPL:2026-12-07:3:2", "--split", "AAPL:2026-12-07:2:1"]
    )
    with pytest.raises(ValueError, match="same day"):
        config_from_args(args)
