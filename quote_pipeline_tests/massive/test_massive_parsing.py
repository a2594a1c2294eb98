"""Massive's answers, parsed: literal payloads as JSON text, decoded exactly (no network)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from string import Template
from typing import Any

import pytest

from quote_pipeline.massive import (
    GROUPED_DAILY_PATH,
    MassiveClient,
    MassiveError,
    MassiveSettings,
    daily_aggs_request,
    grouped_daily,
    parse_daily_aggs,
    parse_snapshot,
    previous_close,
    snapshot_request,
)
from quote_pipeline.massive.quotes import NO_SNAPSHOT_QUOTE, epoch_to_utc, snapshot_chunks
from quote_pipeline.models import FailureKind
from quote_pipeline.price_bars import AS_TRADED, SPLIT_ADJUSTED

FETCHED = datetime(2025, 11, 24, 21, 0, tzinfo=UTC)
SECONDS = 1764000000  # 2025-11-24 16:00:00 UTC
AT = datetime.fromtimestamp(SECONDS, tz=UTC)
# Midnight New York (the start of a daily window) of a few sessions, epoch milliseconds.
NOV_21, NOV_24, NOV_25, NOV_26 = 1763701200000, 1763960400000, 1764046800000, 1764133200000


def decoded(text: str) -> Any:
    """A payload as the client decodes it: every number with a fraction exact."""
    return json.loads(text, parse_float=Decimal)


def snapshot(*rows: str) -> Any:
    listed = ",".join(rows)
    return decoded(f'{{"status": "OK", "count": {len(rows)}, "tickers": [{listed}]}}')


def one(payload: Any, symbol: str = "AAPL") -> Any:
    (result,) = parse_snapshot(payload, [symbol], FETCHED)
    return result


FULL_ROW = """{
  "ticker": "AAPL", "todaysChange": 2.64, "todaysChangePerc": 1.147, "updated": 1764000000000000000,
  "day": {"o": 230.10, "h": 233.00, "l": 229.50, "c": 232.70, "v": 70790813.0, "vw": 231.9},
  "min": {"o": 232.6, "h": 232.9, "l": 232.5, "c": 232.75, "v": 12000, "vw": 232.7,
          "t": 1764000000000, "av": 70790000},
  "prevDay": {"o": 228, "h": 231, "l": 227.5, "c": 230.16, "v": 50000000, "vw": 229.9},
  "lastTrade": {"p": 232.80, "s": 100, "t": 1764000000123456789, "x": 4},
  "lastQuote": {"p": 232.79, "s": 2, "P": 232.81, "S": 3, "t": 1764000000100000000}
}"""


# --- the snapshot ------------------------------------------------------------------------------


def test_a_full_row_takes_the_last_trade_exactly() -> None:
    result = one(snapshot(FULL_ROW))
    quote = result.value
    assert result.failure is None
    assert quote.symbol == "AAPL" and quote.source == "massive"
    assert isinstance(quote.price, Decimal) and str(quote.price) == "232.80"
    assert quote.volume == 70790813 and isinstance(quote.volume, int)
    assert quote.change == Decimal("2.64")
    # lastTrade.t is in nanoseconds: kept to the microsecond, aware UTC.
    assert quote.quoted_at == AT + timedelta(microseconds=123456)
    assert quote.quoted_at.tzinfo is not None and quote.fetched_at == FETCHED


@pytest.mark.parametrize(
    ("row", "price", "quoted_at"),
    [
        pytest.param(  # Starter: no lastTrade, the minute bar's close and time
            '{"ticker": "AAPL", "day": {"c": 232.7, "v": 10}, "min": {"c": 232.75, '
            '"t": 1764000000000}, "prevDay": {"c": 230.16}}',
            "232.75",
            AT,
            id="starter-min-close",
        ),
        pytest.param(  # no minute bar yet: today's close so far
            '{"ticker": "AAPL", "day": {"c": 232.7, "v": 10}, "min": {}, '
            '"prevDay": {"c": 230.16}, "updated": 1764000000}',
            "232.7",
            AT,
            id="day-close",
        ),
        pytest.param(  # before the first trade: day is all zeros, yesterday's close
            '{"ticker": "AAPL", "todaysChange": 0, "day": {"o": 0, "h": 0, "l": 0, "c": 0, '
            '"v": 0, "vw": 0}, "min": {"o": 0, "c": 0, "t": 0, "av": 0}, '
            '"prevDay": {"c": 230.16, "v": 50000000}, "updated": 1764000000000000}',
            "230.16",
            datetime(2025, 11, 21, 21, 0, tzinfo=UTC),  # Friday's close, not `updated`
            id="zero-day-bar",
        ),
        pytest.param(  # a zero last trade is not a price: the next field is asked
            '{"ticker": "AAPL", "lastTrade": {"p": 0, "t": 1764000000000000000}, '
            '"min": {"c": 232.75}, "day": {"c": 232.7}}',
            "232.75",
            FETCHED,  # the minute bar has no time here; the zero trade's time is not its
            id="zero-last-trade",
        ),
        pytest.param(  # a last trade without its time: the minute bar's, never a fresher one
            '{"ticker": "AAPL", "lastTrade": {"p": 232.8}, "min": {"c": 232.75, '
            '"t": 1764000000000}}',
            "232.8",
            AT,
            id="trade-without-time",
        ),
        pytest.param(  # null parts are absent parts; no time at all: the fetch time
            '{"ticker": "AAPL", "lastTrade": null, "min": null, "day": {"c": 1.5E2}}',
            "150",
            FETCHED,
            id="nulls-and-exponent",
        ),
    ],
)
def test_the_price_is_the_first_positive_of_trade_minute_day_previous_day(
    row: str, price: str, quoted_at: datetime
) -> None:
    quote = one(snapshot(row)).value
    assert quote is not None
    assert quote.price == Decimal(price)
    assert quote.quoted_at == quoted_at


def test_a_row_without_any_positive_price_is_a_bad_response() -> None:
    result = one(
        snapshot('{"ticker": "AAPL", "day": {"c": 0, "v": 0}, "prevDay": {"c": 0}, "min": {}}')
    )
    assert result.value is None
    assert result.failure.kind == FailureKind.BAD_RESPONSE
    assert "no positive price" in result.failure.message


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ("70790813", 70790813),
        ("70790813.0", 70790813),
        ("7.0790813E7", 70790813),
        ("7.0790813e+7", 70790813),
        ("100.5", 100),  # fractional shares: rounded half-even
        ("101.5", 102),
        ("101.49", 101),
        ("0", 1234),  # no trade of the day yet: the minute bar's accumulated volume
    ],
)
def test_the_volume_is_a_whole_number_of_shares(volume: str, expected: int) -> None:
    row = f'{{"ticker": "AAPL", "day": {{"c": 10, "v": {volume}}}, "min": {{"c": 10, "av": 1234}}}}'
    assert one(snapshot(row)).value.volume == expected


@pytest.mark.parametrize(
    "bad",
    [
        '"day": {"c": 10, "v": -1}',
        '"day": {"c": 10, "v": "many"}',
        '"day": {"c": 10, "v": 1E30}',
        '"day": "closed"',
        '"lastTrade": {"p": "232.80"}',
        '"lastTrade": {"p": 232.8, "t": -5}',
        '"lastTrade": {"p": 232.8, "t": true}',
        '"day": {"c": 10}, "todaysChange": "up"',
    ],
)
def test_a_badly_shaped_row_fails_its_symbol_only(bad: str) -> None:
    payload = snapshot(FULL_ROW.replace('"AAPL"', '"MSFT"'), '{"ticker": "AAPL", ' + bad + "}")
    good, failed = parse_snapshot(payload, ["MSFT", "AAPL"], FETCHED)
    assert good.value is not None and good.value.symbol == "MSFT"
    assert failed.value is None
    assert failed.failure.kind == FailureKind.BAD_RESPONSE
    assert failed.failure.message.startswith("AAPL: ")


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (1764000000, AT),  # seconds
        (1764000000123, AT + timedelta(milliseconds=123)),
        (1764000000123456, AT + timedelta(microseconds=123456)),
        (1764000000123456789, AT + timedelta(microseconds=123456)),  # ns, floored
        (Decimal("1764000000.5"), AT + timedelta(milliseconds=500)),
        (99999999999, datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # just under 1e11: s
        (100000000000, datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # 1e11: ms
    ],
)
def test_an_epochs_unit_is_told_by_its_magnitude(stamp: Any, expected: datetime) -> None:
    assert epoch_to_utc(stamp) == expected


@pytest.mark.parametrize("stamp", [0, -1, True, "1764000000", Decimal("NaN"), 10**40])
def test_an_unusable_epoch_is_refused(stamp: Any) -> None:
    with pytest.raises(ValueError):
        epoch_to_utc(stamp)


@pytest.mark.parametrize(
    "payload",
    [
        '{"status": "OK", "count": 0}',
        '{"status": "OK", "count": 0, "tickers": null}',
        '{"status": "OK", "count": 0, "tickers": []}',
        '{"status": "OK", "tickers": [{"ticker": "MSFT", "day": {"c": 1}}, {"no": "ticker"}, 5]}',
    ],
)
def test_a_ticker_missing_from_the_snapshot_has_no_quote(payload: str) -> None:
    result = one(decoded(payload))
    assert result.value is None
    assert result.failure.kind == FailureKind.NO_QUOTE
    assert result.failure.message == NO_SNAPSHOT_QUOTE


def test_the_case_of_a_ticker_matters_as_massive_says() -> None:
    result = one(snapshot(FULL_ROW.replace('"AAPL"', '"aapl"')))
    assert result.failure.kind == FailureKind.NO_QUOTE


@pytest.mark.parametrize("payload", ['{"status": "OK", "tickers": {"AAPL": {}}}', "[1, 2]"])
def test_an_unusable_snapshot_fails_every_requested_symbol(payload: str) -> None:
    results = parse_snapshot(decoded(payload), ["AAPL", "MSFT"], FETCHED)
    assert [r.failure.kind for r in results] == [FailureKind.BAD_RESPONSE] * 2


def test_results_come_in_the_requested_order_and_the_first_good_row_wins() -> None:
    second = FULL_ROW.replace("232.80", "999.99")
    payload = snapshot(second.replace('"AAPL"', '"MSFT"'), FULL_ROW, second)
    results = parse_snapshot(payload, ["AAPL", "MSFT", "NVDA"], FETCHED)
    assert [r.symbol for r in results] == ["AAPL", "MSFT", "NVDA"]
    assert results[0].value.price == Decimal("232.80")
    assert results[2].failure.kind == FailureKind.NO_QUOTE


# --- request functions over a stubbed transport --------------------------------------------------


class Recorder:
    """Stands in for ``MassiveClient.get_json``: canned payloads, every call kept."""

    def __init__(self, *payloads: Any) -> None:
        self.payloads = list(payloads)
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, path: str, params: dict[str, str]) -> tuple[Any, datetime]:
        self.calls.append((path, dict(params)))
        payload = self.payloads.pop(0) if len(self.payloads) > 1 else self.payloads[0]
        if isinstance(payload, Exception):
            raise payload
        return payload, FETCHED


def stubbed(recorder: Recorder, **settings: Any) -> MassiveClient:
    client = MassiveClient("k", MassiveSettings(base_url="https://api.massive.com", **settings))
    client.get_json = recorder  # type: ignore[method-assign]
    return client


def test_the_snapshot_request_asks_for_the_units_tickers_in_one_call() -> None:
    recorder = Recorder(snapshot(FULL_ROW))
    with stubbed(recorder) as client:
        results = snapshot_request(client)(["AAPL", "BRK.B"])
    assert recorder.calls == [
        (
            "/v2/snapshot/locale/us/markets/stocks/tickers",
            {"tickers": "AAPL,BRK.B", "include_otc": "false"},
        )
    ]
    assert [r.value is not None for r in results] == [True, False]


def test_long_ticker_lists_are_cut_to_stay_within_max_query_chars() -> None:
    symbols = [f"T{i:04d}" for i in range(300)]  # 5 characters each
    with stubbed(Recorder(snapshot()), max_query_chars=200, tickers_per_snapshot=1000) as c:
        chunks = snapshot_chunks(c, symbols)
        queries = [c.encode_query({"tickers": ",".join(x), "include_otc": "false"}) for x in chunks]
    assert [s for chunk in chunks for s in chunk] == symbols
    assert all(len(q) <= 200 for q in queries)
    assert all(len(q) > 200 - 6 for q in queries[:-1])  # full, not needlessly short
    with stubbed(Recorder(snapshot()), tickers_per_snapshot=7) as c:
        assert [len(x) for x in snapshot_chunks(c, symbols[:20])] == [7, 7, 6]
    with stubbed(Recorder(snapshot()), max_query_chars=100) as c:
        assert snapshot_chunks(c, ["X" * 150, "A"]) == [["X" * 150], ["A"]]  # alone, still asked


def test_a_failed_chunk_fails_its_tickers_only() -> None:
    recorder = Recorder(
        snapshot(FULL_ROW),
        MassiveError(FailureKind.SERVER_ERROR, "/v2/snapshot/...: HTTP 502: Bad Gateway"),
    )
    symbols = ["AAPL"] + [f"T{i:04d}" for i in range(40)]
    with stubbed(recorder, max_query_chars=120) as client:
        results = snapshot_request(client)(symbols)
    assert len(recorder.calls) > 1
    assert [r.symbol for r in results] == symbols
    assert results[0].value is not None
    assert {r.failure.kind for r in results[1:]} >= {FailureKind.SERVER_ERROR}


# --- history -------------------------------------------------------------------------------------


def aggs(rows: str, **top: Any) -> Any:
    extra = "".join(f', "{k}": {json.dumps(v)}' for k, v in top.items())
    return decoded(
        '{"ticker": "AAPL", "status": "OK", "adjusted": false, "queryCount": 3, '
        f'"resultsCount": 3, "results": [{rows}]{extra}}}'
    )


BAR = Template(
    '{"v": 44489128.0, "vw": 231.5, "o": 230.1, "c": 232.80, "h": 233.0, "l": 229.5, '
    '"t": $t, "n": 1}'
)


def bar(t: int) -> str:
    return BAR.substitute(t=t)


def test_daily_aggs_are_dated_in_new_york_and_exact() -> None:
    payload = aggs(",".join(bar(t) for t in (NOV_21, NOV_24, NOV_25)))
    history = parse_daily_aggs(payload, "AAPL", date(2025, 11, 21), date(2025, 11, 25), FETCHED)
    assert history.answered and history.failure is None
    assert [b.day for b in history.bars] == [
        date(2025, 11, 21),
        date(2025, 11, 24),
        date(2025, 11, 25),
    ]
    first = history.bars[0]
    assert str(first.close) == "232.80" and first.vwap == Decimal("231.5")
    assert first.volume == 44489128 and first.change is None and first.change_percent is None
    assert first.price_basis == AS_TRADED and first.source == "massive"
    assert first.fetched_at == FETCHED


def test_daily_aggs_outside_the_range_are_counted_and_bad_rows_rejected() -> None:
    rows = [
        bar(NOV_21),  # before the range
        bar(NOV_24),
        bar(NOV_24),  # the same day again
        f'{{"o": 0, "h": 1, "l": 1, "c": 1, "v": 1, "t": {NOV_25}}}',  # not a price
        f'{{"o": 1, "h": 1, "l": 1, "c": 1, "t": {NOV_26}}}',  # no volume
        '"not a row"',
    ]
    history = parse_daily_aggs(
        aggs(",".join(rows)), "AAPL", date(2025, 11, 24), date(2025, 11, 26), FETCHED
    )
    assert history.answered
    assert [b.day for b in history.bars] == [date(2025, 11, 24)]
    assert history.rows_outside_range == 1
    assert history.failure.kind == FailureKind.BAD_RESPONSE
    assert history.failure.message.startswith("4 of 6 rows rejected: 2025-11-24: ")
    assert "appears twice" in history.failure.message


@pytest.mark.parametrize(
    "payload",
    [
        '{"ticker": "NOPE", "queryCount": 0, "resultsCount": 0, "adjusted": false, "status": "OK"}',
        '{"ticker": "NOPE", "resultsCount": 0, "results": [], "status": "OK"}',
        '{"ticker": "NOPE", "resultsCount": 0, "results": null, "status": "DELAYED"}',
    ],
)
def test_daily_aggs_without_results_are_an_answer_with_no_bars(payload: str) -> None:
    history = parse_daily_aggs(
        decoded(payload), "NOPE", date(2025, 1, 1), date(2025, 12, 31), FETCHED
    )
    assert history.answered and history.bars == [] and history.failure is None


@pytest.mark.parametrize(
    "payload",
    ['{"status": "OK", "results": {"t": 1}}', "[]", '{"ticker": "MSFT", "results": []}'],
)
def test_an_unusable_aggs_answer_is_no_answer(payload: str) -> None:
    history = parse_daily_aggs(
        decoded(payload), "AAPL", date(2025, 1, 1), date(2025, 12, 31), FETCHED
    )
    assert not history.answered
    assert history.failure.kind == FailureKind.BAD_RESPONSE


def test_daily_aggs_request_asks_once_per_ticker_as_traded() -> None:
    recorder = Recorder(aggs(bar(NOV_24)))
    with stubbed(recorder) as client:
        request = daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))
        (result,) = request(["AAPL"])
    assert recorder.calls == [
        (
            "/v2/aggs/ticker/AAPL/range/1/day/2025-11-01/2025-11-30",
            {"adjusted": "false", "sort": "asc", "limit": "50000"},
        )
    ]
    assert result.value.answered and len(result.value.bars) == 1


def test_next_url_is_followed_on_the_clients_host_only() -> None:
    onward = "https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc&apiKey=x"
    recorder = Recorder(aggs(bar(NOV_21), next_url=onward), aggs(bar(NOV_24)))
    with stubbed(recorder) as client:
        (result,) = daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))(["AAPL"])
    assert recorder.calls[1] == ("/v2/aggs/ticker/AAPL/range/1/day/1/2", {"cursor": "abc"})
    assert [b.day for b in result.value.bars] == [date(2025, 11, 21), date(2025, 11, 24)]

    for foreign in ("https://evil.example/v2/aggs?cursor=abc", "https://api.massive.com:8443/x"):
        recorder = Recorder(aggs(bar(NOV_21), next_url=foreign), aggs(bar(NOV_24)))
        with stubbed(recorder) as client:
            (result,) = daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))(["AAPL"])
        assert len(recorder.calls) == 1
        assert [b.day for b in result.value.bars] == [date(2025, 11, 21)]


def test_a_next_url_that_loops_stops() -> None:
    same = "https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc"
    recorder = Recorder(aggs(bar(NOV_21), next_url=same))
    with stubbed(recorder) as client:
        (result,) = daily_aggs_request(client, date(2025, 11, 1), date(2025, 11, 30))(["AAPL"])
    assert len(recorder.calls) == 2  # the first page, then the cursor once
    assert result.value.failure.kind == FailureKind.BAD_RESPONSE  # the day came twice


GROUPED = """{"status": "OK", "adjusted": false, "queryCount": 6, "resultsCount": 6, "results": [
  {"T": "AAPL", "o": 230.1, "h": 233.0, "l": 229.5, "c": 232.80, "v": 4.4489128E7, "vw": 231.5,
   "t": 1764018000000, "n": 600000},
  {"T": "MSFT", "o": 480, "h": 485, "l": 478, "c": 484.10, "v": 20000000.5, "t": 1764018000000},
  {"T": "OTCX", "o": 1, "h": 1, "l": 1, "c": 1, "v": 5, "t": 1764018000000, "otc": true},
  {"T": "ZERO", "o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "t": 1764018000000},
  {"T": "FRAC", "o": 1, "h": 1, "l": 1, "c": 1, "v": "lots", "t": 1764018000000},
  {"o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": 1764018000000}
]}"""


def test_grouped_daily_gives_every_tickers_bar_and_says_why_rows_were_rejected() -> None:
    recorder = Recorder(decoded(GROUPED))
    with stubbed(recorder) as client:
        found = grouped_daily(client, date(2025, 11, 24))
    assert recorder.calls == [
        (
            GROUPED_DAILY_PATH.format(date="2025-11-24"),
            {"adjusted": "false", "include_otc": "false"},
        )
    ]
    assert found.day == date(2025, 11, 24) and found.fetched_at == FETCHED
    assert set(found.bars) == {"AAPL", "MSFT"}
    aapl, msft = found.bars["AAPL"], found.bars["MSFT"]
    assert str(aapl.close) == "232.80" and aapl.volume == 44489128 and aapl.vwap == Decimal("231.5")
    assert aapl.day == date(2025, 11, 24) and aapl.source == "massive"
    assert msft.volume == 20000000 and msft.vwap is None  # half-even; vw is optional
    assert set(found.rejected) == {"ZERO", "FRAC"}
    assert "must be positive" in found.rejected["ZERO"]
    assert "v must be a number" in found.rejected["FRAC"]


def test_grouped_daily_reads_only_the_tickers_asked_for() -> None:
    """The whole market arrives; only the tracked tickers are validated and kept (a bad
    row of an untracked ticker is nobody's business)."""
    with stubbed(Recorder(decoded(GROUPED))) as client:
        found = grouped_daily(client, date(2025, 11, 24), tickers={"AAPL", "ZERO"})
    assert set(found.bars) == {"AAPL"} and set(found.rejected) == {"ZERO"}


def test_grouped_daily_on_a_holiday_has_no_bars() -> None:
    holiday = '{"status": "OK", "adjusted": false, "queryCount": 0, "resultsCount": 0}'
    with stubbed(Recorder(decoded(holiday))) as client:
        found = grouped_daily(client, date(2025, 11, 27))
    assert found.bars == {} and found.rejected == {}


def test_grouped_daily_rejects_conflicting_and_misdated_rows() -> None:
    row = Template('{"T": "$T", "o": 1, "h": 2, "l": 1, "c": $c, "v": 1, "t": $t}')
    rows = [
        row.substitute(T="AAPL", c="1.5", t=NOV_24),
        row.substitute(T="AAPL", c="1.6", t=NOV_24),
        row.substitute(T="MSFT", c="1", t=NOV_25),
    ]
    body = decoded('{"status": "OK", "results": [' + ",".join(rows) + "]}")
    with stubbed(Recorder(body)) as client:
        found = grouped_daily(client, date(2025, 11, 24), adjusted=True)
    assert found.bars == {}
    assert found.rejected["AAPL"] == "appears twice with different bars"
    assert found.rejected["MSFT"] == "dated 2025-11-25, not 2025-11-24"


def test_grouped_daily_with_unusable_results_raises_a_bad_response() -> None:
    body = decoded('{"status": "OK", "results": "none"}')
    with stubbed(Recorder(body)) as client, pytest.raises(MassiveError) as raised:
        grouped_daily(client, date(2025, 11, 24))
    assert raised.value.kind == FailureKind.BAD_RESPONSE


def test_previous_close_is_the_first_result() -> None:
    body = (
        '{"ticker": "AAPL", "status": "OK", "adjusted": true, "resultsCount": 1, "results": '
        '[{"T": "AAPL", "v": 44489128, "vw": 231.5, "o": 230.1, "c": 232.80, "h": 233, '
        f'"l": 229.5, "t": {NOV_24 + 16 * 3600 * 1000}, "n": 1}}]}}'
    )
    recorder = Recorder(decoded(body))
    with stubbed(recorder) as client:
        bar = previous_close(client, "AAPL", adjusted=True)
    assert recorder.calls == [("/v2/aggs/ticker/AAPL/prev", {"adjusted": "true"})]
    assert bar is not None and bar.day == date(2025, 11, 24) and str(bar.close) == "232.80"
    assert bar.price_basis == SPLIT_ADJUSTED

    with stubbed(Recorder(decoded('{"ticker": "NOPE", "status": "OK", "resultsCount": 0}'))) as c:
        assert previous_close(c, "NOPE") is None
    bad = '{"status": "OK", "results": [{"T": "AAPL", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}]}'
    with stubbed(Recorder(decoded(bad))) as c, pytest.raises(MassiveError) as raised:
        previous_close(c, "AAPL")
    assert raised.value.kind == FailureKind.BAD_RESPONSE and "missing 't'" in str(raised.value)
