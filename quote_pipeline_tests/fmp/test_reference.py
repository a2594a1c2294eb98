"""FMP company reference data: profiles, splits and dividends parsed from literal payloads
decoded as the client decodes them (exact decimals), FMP's "" / "NA" quirks, partial
rejection, exact split ratios, and the request functions' calls."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any

import pytest

from quote_pipeline.fetch_engine import FetchEngine, RetryBudget, SymbolResult
from quote_pipeline.fmp.errors import FMPEndpointRestrictedError, FMPError
from quote_pipeline.fmp.reference import (
    DIVIDENDS_PATH,
    NO_PROFILE_MESSAGE,
    PROFILE_PATH,
    SPLITS_PATH,
    dividends_request,
    parse_dividends,
    parse_profile,
    parse_splits,
    profile_request,
    splits_request,
)
from quote_pipeline.models import FailureKind
from quote_pipeline.reference_data import CompanyProfile, Dividend, StockSplit

FETCHED = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def decoded(text: str) -> Any:
    """A response body as :meth:`FMPClient.get_json` decodes it."""
    return json.loads(text, parse_float=Decimal)


# FMP's documented example row (market-data-apis.md §1), description shortened.
AAPL_PROFILE = """[{"symbol":"AAPL","price":232.8,"marketCap":3500823120000,"beta":1.24,
"lastDividend":0.99,"range":"164.08-260.1","change":4.79,"changePercentage":2.1008,"volume":0,
"averageVolume":50542058,"companyName":"Apple Inc.","currency":"USD","cik":"0000320193",
"isin":"US0378331005","cusip":"037833100","exchangeFullName":"NASDAQ Global Select",
"exchange":"NASDAQ","industry":"Consumer Electronics","website":"https://www.apple.com",
"description":"Apple Inc. designs, manufactures, ...","ceo":"Mr. Timothy D. Cook",
"sector":"Technology","country":"US","fullTimeEmployees":"164000","phone":"(408) 996-1010",
"address":"One Apple Park Way","city":"Cupertino","state":"CA","zip":"95014",
"image":"https://images.financialmodelingprep.com/symbol/AAPL.png","ipoDate":"1980-12-12",
"defaultImage":false,"isEtf":false,"isActivelyTrading":true,"isAdr":false,"isFund":false}]"""


def profile_row(**changes: Any) -> list[dict[str, Any]]:
    """The example row with some fields changed (a value of ... removes the field)."""
    (row,) = decoded(AAPL_PROFILE)
    row.update(changes)
    return [{k: v for k, v in row.items() if v is not ...}]


def profile_of(payload: Any, symbol: str = "AAPL") -> CompanyProfile:
    result = parse_profile(payload, symbol, FETCHED)
    assert result.failure is None, result.failure
    assert result.value is not None
    return result.value


def failure_of(result: SymbolResult[Any]) -> tuple[FailureKind, str]:
    assert result.failure is not None
    return result.failure.kind, result.failure.message


# --- profile ---------------------------------------------------------------------------------


def test_the_documented_profile_row_parses_exactly() -> None:
    profile = profile_of(decoded(AAPL_PROFILE))
    assert profile == CompanyProfile(
        symbol="AAPL",
        company_name="Apple Inc.",
        exchange="NASDAQ",
        exchange_full_name="NASDAQ Global Select",
        currency="USD",
        country="US",
        sector="Technology",
        industry="Consumer Electronics",
        market_cap=Decimal(3500823120000),
        is_etf=False,
        is_fund=False,
        is_adr=False,
        is_actively_trading=True,
        ipo_date=date(1980, 12, 12),
        cik="0000320193",
        isin="US0378331005",
        cusip="037833100",
        website="https://www.apple.com",
        description="Apple Inc. designs, manufactures, ...",
        fetched_at=FETCHED,
    )
    assert isinstance(profile.market_cap, Decimal)


def test_an_empty_answer_is_an_unknown_or_delisted_symbol() -> None:
    result = parse_profile([], "ZZZZ", FETCHED)
    assert result.value is None
    assert failure_of(result) == (FailureKind.NO_QUOTE, NO_PROFILE_MESSAGE)
    assert result.symbol == "ZZZZ"


@pytest.mark.parametrize("blank", ["", "NA", "na", " Na ", "  "])
def test_empty_and_na_text_and_dates_become_none(blank: str) -> None:
    profile = profile_of(
        profile_row(
            companyName=blank,
            sector=blank,
            industry=blank,
            website=blank,
            ipoDate=blank,
            cik=blank,
            isin=blank,
            cusip=blank,
            exchangeFullName=blank,
            marketCap=blank,
            isAdr=blank,
        )
    )
    assert profile.company_name is None
    assert profile.sector is None
    assert profile.industry is None
    assert profile.website is None
    assert profile.ipo_date is None
    assert profile.cik is None
    assert profile.isin is None
    assert profile.cusip is None
    assert profile.exchange_full_name is None
    assert profile.market_cap is None
    assert profile.is_adr is None
    assert profile.exchange == "NASDAQ"  # the untouched fields are still there


def test_missing_and_null_optional_fields_become_none() -> None:
    profile = profile_of(profile_row(marketCap=None, isEtf=None, ipoDate=..., description=...))
    assert profile.market_cap is None
    assert profile.is_etf is None
    assert profile.ipo_date is None
    assert profile.description is None


def test_text_is_stripped_and_a_long_description_is_kept_whole() -> None:
    description = "Apple designs phones. " * 2000
    profile = profile_of(profile_row(companyName="  Apple Inc.\n", description=description))
    assert profile.company_name == "Apple Inc."
    assert profile.description == description.strip()
    assert len(profile.description) > 40_000


def test_a_cik_sent_as_an_integer_is_zero_padded() -> None:
    assert profile_of(profile_row(cik=320193)).cik == "0000320193"
    assert profile_of(profile_row(cik="0000320193")).cik == "0000320193"


def test_flags_accept_true_and_false_text() -> None:
    profile = profile_of(profile_row(isEtf="true", isFund="False", isActivelyTrading=" TRUE "))
    assert (profile.is_etf, profile.is_fund, profile.is_actively_trading) == (True, False, True)


def test_market_cap_may_look_like_a_float() -> None:
    profile = profile_of(decoded(AAPL_PROFILE.replace("3500823120000", "3.50082312E12")))
    assert profile.market_cap == Decimal(3500823120000)
    profile = profile_of(decoded(AAPL_PROFILE.replace("3500823120000", "3500823120000.0")))
    assert profile.market_cap == Decimal(3500823120000)


def test_v3_field_names_are_read_where_the_stable_ones_are_missing() -> None:
    profile = profile_of(
        profile_row(
            marketCap=...,
            mktCap=Decimal("3.5E12"),
            exchangeFullName=...,
            exchange="NASDAQ Global Select",  # v3: the full name under "exchange"
            exchangeShortName="NASDAQ",
        )
    )
    assert profile.market_cap == Decimal("3.5E12")
    assert profile.exchange == "NASDAQ"
    assert profile.exchange_full_name == "NASDAQ Global Select"


def test_the_symbol_is_matched_case_insensitively() -> None:
    assert profile_of(profile_row(symbol="aapl")).symbol == "AAPL"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"symbol": "AAPL"}, "expected a JSON list, got dict"),
        (None, "expected a JSON list, got NoneType"),
        ("Premium Query Parameter", "expected a JSON list, got str"),
        (["AAPL"], "expected an object, got str"),
        (profile_row(symbol="MSFT"), "row of another symbol 'MSFT'"),
        (profile_row(symbol=...), "missing symbol"),
        (profile_row(symbol=""), "missing symbol"),
        (profile_row(isEtf="yes"), "isEtf must be true or false"),
        (profile_row(isFund=0), "isFund must be true or false"),
        (profile_row(marketCap="3500823120000"), "marketCap must be a number"),
        (profile_row(marketCap=True), "marketCap must be a number"),
        (decoded('[{"symbol":"AAPL","marketCap":NaN}]'), "marketCap must be a number"),
        (profile_row(marketCap=Decimal("Infinity")), "marketCap must be finite"),
        (profile_row(ipoDate="12/12/1980"), "ipoDate must be YYYY-MM-DD"),
        (profile_row(ipoDate="1980-02-30"), "ipoDate is not a calendar date"),
        (profile_row(ipoDate=19801212), "ipoDate must be YYYY-MM-DD"),
        (profile_row(companyName=42), "companyName must be text"),
        (profile_row(cik=-1), "cik must not be negative"),
        (profile_row(cik=Decimal("320193.5")), "cik must be text"),
    ],
)
def test_an_unusable_profile_is_a_bad_response(payload: Any, problem: str) -> None:
    result = parse_profile(payload, "AAPL", FETCHED)
    assert result.value is None
    kind, message = failure_of(result)
    assert kind is FailureKind.BAD_RESPONSE
    assert problem in message


# --- splits ----------------------------------------------------------------------------------

AAPL_SPLITS = """[
{"symbol":"AAPL","date":"2020-08-31","numerator":4,"denominator":1,"splitType":"stock-split"},
{"symbol":"AAPL","date":"2014-06-09","numerator":7,"denominator":1,"splitType":"stock-split"},
{"symbol":"AAPL","date":"2005-02-28","numerator":2,"denominator":1,"splitType":"stock-split"},
{"symbol":"AAPL","date":"2000-06-21","numerator":2,"denominator":1,"splitType":"stock-split"},
{"symbol":"AAPL","date":"1987-06-16","numerator":2,"denominator":1,"splitType":"stock-split"}
]"""


def split(numerator: str, denominator: str) -> StockSplit:
    return StockSplit("X", date(2024, 1, 2), Decimal(numerator), Decimal(denominator), None)


def test_aapl_splits_parse_oldest_first() -> None:
    result = parse_splits(decoded(AAPL_SPLITS), "AAPL")
    assert result.failure is None
    assert result.value is not None
    assert [s.ex_date for s in result.value] == [
        date(1987, 6, 16),
        date(2000, 6, 21),
        date(2005, 2, 28),
        date(2014, 6, 9),
        date(2020, 8, 31),
    ]
    latest = result.value[-1]
    assert latest == StockSplit("AAPL", date(2020, 8, 31), Decimal(4), Decimal(1), "stock-split")
    assert latest.ratio == 4
    assert latest.is_valid


def test_no_splits_is_an_answer() -> None:
    result = parse_splits([], "MSFT")
    assert result == SymbolResult("MSFT", [], None)
    assert result.value == []


def test_the_split_type_is_optional() -> None:
    # FMP's doc sample leaves splitType out; "" and "NA" mean the same.
    payload = decoded(
        '[{"symbol":"EYEN","date":"2024-01-02","numerator":1,"denominator":80},'
        '{"symbol":"EYEN","date":"2023-01-02","numerator":1,"denominator":2,"splitType":"NA"}]'
    )
    result = parse_splits(payload, "EYEN")
    assert result.failure is None
    assert result.value is not None
    assert [s.split_type for s in result.value] == [None, None]


def test_a_reverse_split_has_an_exact_ratio_below_one() -> None:
    (reverse,) = (
        parse_splits(
            decoded('[{"symbol":"X","date":"2024-01-02","numerator":1,"denominator":10}]'), "X"
        ).value
        or []
    )
    assert reverse.ratio == Decimal("0.1")
    assert str(reverse.ratio) == "0.1"
    assert reverse.is_valid


def test_ratios_are_exact_whatever_the_ambient_precision() -> None:
    three_for_two = split("3", "2")
    with localcontext() as context:
        context.prec = 2  # a caller's narrow context must not round the ratio
        assert three_for_two.ratio == Decimal("1.5")
        assert split("1", "80").ratio == Decimal("0.0125")
    assert split("1.5", "1").ratio == Decimal("1.5")


def test_a_non_terminating_ratio_is_close_and_valid() -> None:
    two_for_three = split("2", "3")
    assert two_for_three.is_valid
    assert two_for_three.ratio is not None
    assert abs(two_for_three.ratio - Decimal(2) / Decimal(3)) < Decimal("1e-25")
    assert str(two_for_three.ratio).startswith("0.666666666666666666666666")


@pytest.mark.parametrize(
    ("numerator", "denominator", "ratio"),
    [("1", "1", Decimal(1)), ("5", "5", Decimal(1)), ("0", "1", None), ("1", "0", None)],
)
def test_ratio_one_and_zero_are_parsed_but_not_valid(
    numerator: str, denominator: str, ratio: Decimal | None
) -> None:
    payload = [
        {
            "symbol": "X",
            "date": "2024-01-02",
            "numerator": int(numerator),
            "denominator": int(denominator),
        }
    ]
    result = parse_splits(payload, "X")
    assert result.failure is None  # an asset check reports these, not the parser
    assert result.value is not None
    (parsed,) = result.value
    assert parsed.ratio == ratio
    assert not parsed.is_valid


def test_a_negative_side_is_parsed_but_has_no_ratio() -> None:
    (parsed,) = (
        parse_splits(
            [{"symbol": "X", "date": "2024-01-02", "numerator": -2, "denominator": 1}], "X"
        ).value
        or []
    )
    assert parsed.numerator == -2
    assert parsed.ratio is None
    assert not parsed.is_valid


def test_bad_split_rows_are_rejected_and_the_good_ones_kept() -> None:
    payload = decoded(
        """[
        {"symbol":"AAPL","date":"2020-08-31","numerator":4,"denominator":1,"splitType":"stock-split"},
        {"symbol":"AAPL","date":"2020-08-31","numerator":5,"denominator":1},
        {"symbol":"MSFT","date":"2003-02-18","numerator":2,"denominator":1},
        {"symbol":"AAPL","date":"2019-01-01","numerator":"4","denominator":1},
        {"symbol":"AAPL","date":"2018-01-01","numerator":4,"denominator":NaN},
        {"symbol":"AAPL","date":"","numerator":4,"denominator":1},
        {"symbol":"AAPL","numerator":4,"denominator":1},
        {"symbol":"AAPL","date":"2017-01-01","numerator":4},
        [],
        {"symbol":"AAPL","date":"2014-06-09","numerator":7,"denominator":1.0,"splitType":""}
        ]"""
    )
    result = parse_splits(payload, "AAPL")
    assert result.value == [
        StockSplit("AAPL", date(2014, 6, 9), Decimal(7), Decimal("1.0"), None),
        StockSplit("AAPL", date(2020, 8, 31), Decimal(4), Decimal(1), "stock-split"),
    ]
    kind, message = failure_of(result)
    assert kind is FailureKind.BAD_RESPONSE
    assert message.startswith("8 of 10 rows rejected: ")
    assert "2020-08-31: 2020-08-31 appears twice" in message
    assert "row of another symbol 'MSFT'" in message
    assert "numerator must be a number" in message
    assert message.endswith(" …")  # more than three reasons: the rest are counted, not shown


@pytest.mark.parametrize("payload", [{"symbol": "AAPL"}, None, "Error"])
def test_a_splits_answer_that_is_not_a_list_is_unusable(payload: Any) -> None:
    result = parse_splits(payload, "AAPL")
    assert result.value is None
    kind, message = failure_of(result)
    assert kind is FailureKind.BAD_RESPONSE
    assert message.startswith("unusable response: expected a JSON list")


# --- dividends -------------------------------------------------------------------------------

# FMP's documented example row (market-data-apis.md §3) and an older one with empty dates.
AAPL_DIVIDENDS = """[
{"symbol":"AAPL","date":"2025-02-10","recordDate":"2025-02-10","paymentDate":"2025-02-13",
 "declarationDate":"2025-01-30","adjDividend":0.25,"dividend":0.25,"yield":0.42955326460481097,
 "frequency":"Quarterly"},
{"symbol":"AAPL","date":"1987-05-11","recordDate":"","paymentDate":"","declarationDate":"",
 "adjDividend":0.000536,"dividend":0.12,"yield":0,"frequency":"Quarterly"}
]"""


def test_the_documented_dividend_rows_parse_exactly() -> None:
    result = parse_dividends(decoded(AAPL_DIVIDENDS), "AAPL")
    assert result.failure is None
    assert result.value == [
        Dividend(
            symbol="AAPL",
            ex_date=date(1987, 5, 11),
            dividend=Decimal("0.12"),
            adj_dividend=Decimal("0.000536"),
            record_date=None,
            payment_date=None,
            declaration_date=None,
            frequency="Quarterly",
        ),
        Dividend(
            symbol="AAPL",
            ex_date=date(2025, 2, 10),
            dividend=Decimal("0.25"),
            adj_dividend=Decimal("0.25"),
            record_date=date(2025, 2, 10),
            payment_date=date(2025, 2, 13),
            declaration_date=date(2025, 1, 30),
            frequency="Quarterly",
        ),
    ]
    assert all(isinstance(d.dividend, Decimal) for d in result.value)


def test_no_dividends_is_an_answer() -> None:
    assert parse_dividends([], "BRK.B") == SymbolResult("BRK.B", [], None)


def test_optional_dividend_fields_may_be_missing_null_or_na() -> None:
    payload = decoded(
        '[{"date":"2024-03-01","dividend":1,"adjDividend":null,"recordDate":"NA",'
        '"paymentDate":null,"frequency":""},'
        '{"symbol":"KO","date":"2024-06-01","dividend":0.485,"adjDividend":"",'
        '"frequency":" Semi-Annual "}]'
    )
    result = parse_dividends(payload, "KO")
    assert result.failure is None
    assert result.value is not None
    first, second = result.value
    assert (first.adj_dividend, first.record_date, first.payment_date) == (None, None, None)
    assert (first.declaration_date, first.frequency) == (None, None)
    assert first.dividend == 1
    assert second.adj_dividend is None
    assert second.frequency == "Semi-Annual"


def test_bad_dividend_rows_are_rejected_and_the_good_ones_kept() -> None:
    payload = decoded(
        """[
        {"symbol":"KO","date":"2024-06-14","dividend":0.485,"adjDividend":0.485,
         "recordDate":"2024-06-14","paymentDate":"2024-07-01","declarationDate":"2024-04-25"},
        {"symbol":"KO","date":"2024-03-14","dividend":0.485,"paymentDate":"04/01/2024"},
        {"symbol":"KO","date":"2023-11-30","dividend":"0.46"},
        {"symbol":"KO","date":"2023-09-14"},
        {"symbol":"KO","date":"2023-06-15","dividend":0.46,"adjDividend":"n/a"},
        {"symbol":"PEP","date":"2023-06-01","dividend":1.265},
        {"symbol":"KO","date":"2024-06-14","dividend":0.5},
        {"symbol":"KO","date":"2023-03-16","dividend":0.46,"frequency":4},
        {"symbol":"KO","date":"2022-11-30","dividend":0.44,"recordDate":""}
        ]"""
    )
    result = parse_dividends(payload, "KO")
    assert result.value is not None
    assert [d.ex_date for d in result.value] == [date(2022, 11, 30), date(2024, 6, 14)]
    # A second row of a date is a second payment that day: summed, the first row's dates kept.
    assert result.value[1].dividend == Decimal("0.985")
    assert result.value[1].record_date == date(2024, 6, 14)
    kind, message = failure_of(result)
    assert kind is FailureKind.BAD_RESPONSE
    assert message.startswith("6 of 9 rows rejected: 2024-03-14: paymentDate must be YYYY-MM-DD")


def test_every_row_rejected_still_answers_with_an_empty_list() -> None:
    result = parse_dividends([{"symbol": "KO", "date": "2024-01-02"}], "KO")
    assert result.value == []
    kind, message = failure_of(result)
    assert (kind, message) == (
        FailureKind.BAD_RESPONSE,
        "1 of 1 rows rejected: 2024-01-02: missing 'dividend'",
    )


# --- requests --------------------------------------------------------------------------------


class FakeClient:
    """A stand-in for :class:`FMPClient`: answers ``get_json`` and records each call."""

    def __init__(self, payload: Any = None, error: Exception | None = None) -> None:
        self.payload = payload
        self.error = error
        self.calls: list[tuple[str, dict[str, str]]] = []

    def get_json(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        self.calls.append((path, dict(params)))
        if self.error is not None:
            raise self.error
        return self.payload, FETCHED


def test_profile_request_asks_for_one_symbol_without_a_key() -> None:
    client: Any = FakeClient(decoded(AAPL_PROFILE))
    (result,) = profile_request(client)(["AAPL"])
    assert client.calls == [(PROFILE_PATH, {"symbol": "AAPL"})]
    assert result.failure is None
    assert result.value is not None
    assert result.value.fetched_at == FETCHED  # the client's arrival time, not the parser's


def test_profile_request_reports_an_unknown_symbol() -> None:
    client: Any = FakeClient([])
    (result,) = profile_request(client)(["ZZZZ"])
    assert failure_of(result)[0] is FailureKind.NO_QUOTE


def test_splits_request_asks_for_the_whole_history_without_a_key() -> None:
    client: Any = FakeClient(decoded(AAPL_SPLITS))
    (result,) = splits_request(client)(["AAPL"])
    assert client.calls == [(SPLITS_PATH, {"symbol": "AAPL", "limit": "1000"})]
    assert result.value is not None
    assert len(result.value) == 5


def test_dividends_request_asks_for_the_whole_history_without_a_key() -> None:
    client: Any = FakeClient(decoded(AAPL_DIVIDENDS))
    (result,) = dividends_request(client)(["AAPL"])
    assert client.calls == [(DIVIDENDS_PATH, {"symbol": "AAPL", "limit": "1000"})]
    assert result.value is not None
    assert len(result.value) == 2
    assert all("apikey" not in params for _, params in client.calls)


@pytest.mark.parametrize("make", [profile_request, splits_request, dividends_request])
def test_client_errors_propagate_for_the_engine_to_classify(make: Any) -> None:
    error = FMPError(FailureKind.NOT_IN_PLAN, "402 Premium Query Parameter", status=402)
    client: Any = FakeClient(error=error)
    with pytest.raises(FMPError) as raised:
        make(client)(["PG"])
    assert raised.value is error


@pytest.mark.parametrize("make", [profile_request, splits_request, dividends_request])
def test_a_request_takes_exactly_one_symbol(make: Any) -> None:
    client: Any = FakeClient([])
    with pytest.raises(ValueError, match="one symbol per request"):
        make(client)(["AAPL", "MSFT"])
    assert client.calls == []


class EngineClient:
    """Just enough of a client for :class:`FetchEngine`: one answer (or error) per symbol,
    served one request at a time."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests_made = 0
        self.quota_exhausted = False

    def get_json(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        self.requests_made += 1
        answer = self.answers[params["symbol"]]
        if isinstance(answer, Exception):
            raise answer
        return answer, FETCHED

    def map_concurrently(self, task: Callable[[str], Any], items: Sequence[str]) -> list[Any]:
        return [task(item) for item in items]


def test_a_per_symbol_402_fails_only_that_symbol_through_the_engine() -> None:
    refusal = FMPError(FailureKind.NOT_IN_PLAN, "402 Premium Query Parameter", status=402)
    client: Any = EngineClient({"AAPL": decoded(AAPL_DIVIDENDS), "PG": refusal, "BRK.B": []})
    engine = FetchEngine(client, RetryBudget(extra_passes=0))
    report = engine.fetch(["AAPL", "PG", "BRK.B"], dividends_request(client))
    by_symbol = {result.symbol: result for result in report.results}
    assert by_symbol["AAPL"].value is not None
    assert len(by_symbol["AAPL"].value) == 2
    assert by_symbol["BRK.B"].value == []  # no dividends: an answer, not a failure
    assert by_symbol["PG"].value is None
    assert [(f.symbol, f.kind) for f in report.failures] == [("PG", FailureKind.NOT_IN_PLAN)]
    assert client.requests_made == 3


def test_a_restricted_endpoint_stops_the_run() -> None:
    restricted = FMPEndpointRestrictedError("402 Restricted Endpoint", status=402)
    client: Any = EngineClient({"AAPL": restricted, "MSFT": []})
    engine = FetchEngine(client, RetryBudget(extra_passes=0))
    with pytest.raises(FMPEndpointRestrictedError):
        engine.fetch(["AAPL", "MSFT"], splits_request(client))


def test_a_regular_and_a_special_dividend_on_one_ex_date_are_one_payment_of_their_sum() -> None:
    payload = decoded(
        """[
        {"symbol":"COST","date":"2024-01-11","recordDate":"2024-01-12","paymentDate":"2024-01-26",
         "declarationDate":"2023-12-14","adjDividend":15,"dividend":15,"yield":0.6,
         "frequency":"Special"},
        {"symbol":"COST","date":"2024-01-11","recordDate":"","paymentDate":"",
         "declarationDate":"","adjDividend":1.02,"dividend":1.02,"yield":0.6,
         "frequency":"Quarterly"}
        ]"""
    )
    result = parse_dividends(payload, "COST")
    assert result.failure is None  # a clean answer: it replaces the stored rows
    (only,) = result.value or []
    assert (only.ex_date, only.dividend, only.adj_dividend) == (
        date(2024, 1, 11),
        Decimal("16.02"),
        Decimal("16.02"),
    )
    assert only.record_date == date(2024, 1, 12)
