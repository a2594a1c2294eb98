"""company_profiles, stock_splits and dividends as stored by storage/corporate_actions.py, on
SQLite and PostgreSQL: exact values back, profiles flagged (never deleted), a clean non-empty
answer replacing a ticker's actions and an empty one keeping them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.reference_data import CompanyProfile, Dividend, StockSplit
from quote_pipeline.storage import add_tickers
from quote_pipeline.storage.corporate_actions import (
    ACTIVE,
    GONE,
    NOT_TRADING,
    profile_counts,
    read_dividends,
    read_profiles,
    read_splits,
    replace_dividends,
    replace_splits,
    tickers_without_profile,
    write_profiles,
)
from quote_pipeline.storage.repository import count_rows
from quote_pipeline.storage.schema import company_profiles, dividends, stock_splits

T1 = datetime(2026, 11, 20, 21, 5, 7, 123456, tzinfo=UTC)
T2 = T1 + timedelta(days=1, microseconds=1)
T3 = T1 + timedelta(days=2)
T4 = T1 + timedelta(days=3)

MARKET_CAP = Decimal("3456789012345.678901234567890123")  # 34 significant digits


def profile(symbol: str, **changes: Any) -> CompanyProfile:
    fields: dict[str, Any] = {
        "symbol": symbol,
        "company_name": "Apple Inc.",
        "exchange": "NASDAQ",
        "exchange_full_name": "NASDAQ Global Select",
        "currency": "USD",
        "country": "US",
        "sector": "Technology",
        "industry": "Consumer Electronics",
        "market_cap": MARKET_CAP,
        "is_etf": False,
        "is_fund": False,
        "is_adr": True,
        "is_actively_trading": True,
        "ipo_date": date(1980, 12, 12),
        "cik": "0000320193",
        "isin": "US0378331005",
        "cusip": "037833100",
        "website": "https://www.apple.com",
        "description": "Designs phones — and “other” things.",
        "fetched_at": T1,
    }
    fields.update(changes)
    return CompanyProfile(**fields)


def bare_profile(symbol: str) -> CompanyProfile:
    """Everything FMP may leave empty left empty."""
    names = [f.name for f in dataclasses.fields(CompanyProfile)]
    return CompanyProfile(
        **{name: None for name in names if name not in ("symbol", "fetched_at")},
        symbol=symbol,
        fetched_at=T1,
    )


def stored(p: CompanyProfile, *, status: str = ACTIVE, missing_since: Any = None) -> dict:
    """The row write_profiles must store for ``p``."""
    row = {f.name: getattr(p, f.name) for f in dataclasses.fields(CompanyProfile)}
    row["ticker"] = row.pop("symbol")
    return {**row, "status": status, "missing_since": missing_since}


def exact(row: dict[str, Any]) -> dict[str, str]:
    """Each value as its repr: Decimal('1.50') and Decimal('1.5'), True and 1, differ."""
    return {name: repr(value) for name, value in row.items()}


def one_profile(engine: Engine, symbol: str) -> dict[str, Any]:
    (row,) = read_profiles(engine, [symbol])
    return row


# --- profiles -----------------------------------------------------------------------------------


def test_profiles_are_written_and_read_back_exactly(engine: Engine) -> None:
    full, bare = profile("AAPL"), bare_profile("ZZZZ")
    done = write_profiles(engine, [full, bare], gone=[], now=T1)
    assert (done.written, done.newly_gone, done.not_trading) == (2, [], [])
    rows = read_profiles(engine)
    assert [exact(r) for r in rows] == [exact(stored(full)), exact(stored(bare))]
    assert str(rows[0]["market_cap"]) == str(MARKET_CAP)
    assert rows[0]["is_adr"] is True and rows[0]["is_etf"] is False
    assert rows[0]["cik"] == "0000320193"  # leading zeros kept
    assert read_profiles(engine, ["ZZZZ"]) == [stored(bare)]
    assert read_profiles(engine, []) == []


def test_a_second_write_updates_the_profile(engine: Engine) -> None:
    write_profiles(engine, [profile("AAPL"), profile("MSFT")], gone=[], now=T1)
    updated = profile(
        "AAPL",
        company_name="Apple",
        sector=None,
        market_cap=Decimal("0.000000000000000000001"),
        is_adr=None,
        ipo_date=None,
        description=None,
        fetched_at=T2,
    )
    write_profiles(engine, [updated], gone=[], now=T2)
    assert [exact(r) for r in read_profiles(engine)] == [
        exact(stored(updated)),
        exact(stored(profile("MSFT"))),
    ]
    assert count_rows(engine, company_profiles) == 2


def test_a_gone_ticker_is_flagged_once_keeping_every_other_column(engine: Engine) -> None:
    aapl, msft = profile("AAPL"), profile("MSFT", company_name="Microsoft")
    write_profiles(engine, [aapl, msft], gone=[], now=T1)

    # NOPE has no stored profile: nothing to flag, and no row is made for it.
    done = write_profiles(engine, [], gone=["AAPL", "NOPE"], now=T2)
    assert (done.written, done.newly_gone) == (0, ["AAPL"])
    assert exact(one_profile(engine, "AAPL")) == exact(stored(aapl, status=GONE, missing_since=T2))
    assert exact(one_profile(engine, "MSFT")) == exact(stored(msft))
    assert count_rows(engine, company_profiles) == 2

    # Still gone on the next refresh: not newly gone, missing_since is the first miss.
    done = write_profiles(engine, [], gone=["AAPL"], now=T3)
    assert done.newly_gone == []
    assert one_profile(engine, "AAPL")["missing_since"] == T2
    assert one_profile(engine, "AAPL")["status"] == GONE

    # Answered again: active again, with the new answer.
    back = profile("AAPL", market_cap=Decimal("12.5"), fetched_at=T4)
    done = write_profiles(engine, [back], gone=[], now=T4)
    assert done.newly_gone == []
    assert exact(one_profile(engine, "AAPL")) == exact(stored(back))


def test_gone_in_the_same_write_as_other_answers(engine: Engine) -> None:
    write_profiles(engine, [profile("AAPL"), profile("MSFT")], gone=[], now=T1)
    fresh = profile("MSFT", fetched_at=T2, sector="Software")
    done = write_profiles(engine, [fresh], gone=["AAPL", "AAPL"], now=T2)
    assert (done.written, done.newly_gone) == (1, ["AAPL"])
    assert one_profile(engine, "AAPL")["status"] == GONE
    assert exact(one_profile(engine, "MSFT")) == exact(stored(fresh))


def test_not_actively_trading_is_flagged_not_trading(engine: Engine) -> None:
    halted = profile("HALT", is_actively_trading=False)
    unknown = profile("UNKN", is_actively_trading=None)
    done = write_profiles(engine, [halted, unknown, profile("AAPL")], gone=[], now=T1)
    assert done.not_trading == ["HALT"]
    statuses = {r["ticker"]: r["status"] for r in read_profiles(engine)}
    assert statuses == {"AAPL": ACTIVE, "HALT": NOT_TRADING, "UNKN": ACTIVE}
    assert one_profile(engine, "HALT")["is_actively_trading"] is False

    # A not-trading ticker can then go, and come back trading.
    assert write_profiles(engine, [], gone=["HALT"], now=T2).newly_gone == ["HALT"]
    assert one_profile(engine, "HALT")["status"] == GONE
    write_profiles(engine, [profile("HALT", fetched_at=T3)], gone=[], now=T3)
    assert one_profile(engine, "HALT")["status"] == ACTIVE
    assert one_profile(engine, "HALT")["missing_since"] is None


def test_tickers_without_profile_are_the_tracked_ones_without_a_row(engine: Engine) -> None:
    assert tickers_without_profile(engine) == []
    add_tickers(engine, ["MSFT", "AAPL", "TSLA", "XOM"], now=T1)
    assert tickers_without_profile(engine) == ["AAPL", "MSFT", "TSLA", "XOM"]
    # GOOG is not tracked: its profile changes nothing; a gone profile still is a profile.
    write_profiles(engine, [profile("AAPL"), profile("GOOG"), profile("XOM")], gone=[], now=T1)
    write_profiles(engine, [], gone=["XOM"], now=T2)
    assert tickers_without_profile(engine) == ["MSFT", "TSLA"]


def test_profile_counts_cover_tracked_tickers_only(engine: Engine) -> None:
    add_tickers(engine, ["AAPL", "MSFT", "XOM", "TSLA", "ODD"], now=T1)
    write_profiles(
        engine,
        [
            profile("AAPL"),
            profile("MSFT", is_actively_trading=False),
            profile("XOM", sector="Energy", exchange="NYSE"),
            profile("ODD", sector=None, exchange=None),
            profile("GOOG", sector="Communication Services"),  # not tracked
        ],
        gone=[],
        now=T1,
    )
    write_profiles(engine, [], gone=["XOM", "GOOG"], now=T2)
    counts = profile_counts(engine)
    assert counts.by_sector == {"Technology": 2, "Energy": 1, "(none)": 1}
    assert counts.by_exchange == {"NASDAQ": 2, "NYSE": 1, "(none)": 1}
    assert counts.by_status == {ACTIVE: 2, NOT_TRADING: 1, GONE: 1}
    assert sum(counts.by_status.values()) == 4  # TSLA has no profile, GOOG is not tracked


def test_profile_counts_of_an_empty_database(engine: Engine) -> None:
    counts = profile_counts(engine)
    assert (counts.by_sector, counts.by_exchange, counts.by_status) == ({}, {}, {})


# --- splits ---------------------------------------------------------------------------------------


def split(
    symbol: str, day: date, num: str, den: str, kind: str | None = "stock-split"
) -> StockSplit:
    return StockSplit(symbol, day, Decimal(num), Decimal(den), kind)


def split_rows(engine: Engine) -> list[tuple[str, ...]]:
    """Every stored split, every column as its repr (fetched_at included)."""
    with engine.connect() as conn:
        query = sa.select(stock_splits).order_by(stock_splits.c.ticker, stock_splits.c.ex_date)
        return [tuple(map(repr, row)) for row in conn.execute(query)]


def dividend_rows(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as conn:
        query = sa.select(dividends).order_by(dividends.c.ticker, dividends.c.ex_date)
        return [tuple(map(repr, row)) for row in conn.execute(query)]


AAPL_SPLITS = [
    split("AAPL", date(2014, 6, 9), "7", "1"),
    split("AAPL", date(2020, 8, 31), "4", "1"),
]
ODD_SPLITS = [
    split("ODD", date(2019, 5, 2), "3", "2", None),
    split("ODD", date(2023, 1, 3), "1", "10", "reverse"),
    split("ODD", date(2024, 7, 1), "1.5", "1"),
]


def test_splits_are_written_exactly(engine: Engine) -> None:
    done = replace_splits(engine, {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, fetched_at=T1)
    assert (done.rows_written, done.rows_removed) == (5, 0)
    assert (done.changed, done.kept_on_empty) == (["AAPL", "ODD"], [])
    found = read_splits(engine)
    assert found == {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}
    assert [(str(s.numerator), str(s.denominator)) for s in found["ODD"]] == [
        ("3", "2"),
        ("1", "10"),
        ("1.5", "1"),
    ]
    assert found["ODD"][0].split_type is None
    assert read_splits(engine, ["ODD"]) == {"ODD": ODD_SPLITS}
    assert read_splits(engine, ["NONE"]) == {}
    with engine.connect() as conn:
        assert set(conn.scalars(sa.select(stock_splits.c.fetched_at))) == {T1}


def test_the_same_answer_again_changes_nothing_and_duplicates_nothing(engine: Engine) -> None:
    replace_splits(engine, {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, fetched_at=T1)
    before = read_splits(engine)
    # The same splits, spelled differently: 4 as 4.0, 1.5 as 1.50.
    respelled = {
        "AAPL": [
            split("AAPL", date(2014, 6, 9), "7.0", "1"),
            split("AAPL", date(2020, 8, 31), "4.0", "1.0"),
        ],
        "ODD": [*ODD_SPLITS[:2], split("ODD", date(2024, 7, 1), "1.50", "1")],
    }
    for answer in ({"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, respelled, respelled):
        done = replace_splits(engine, answer, fetched_at=T2)
        assert (done.changed, done.kept_on_empty, done.rows_removed) == ([], [], 0)
        assert done.rows_written == 5
        assert read_splits(engine) == before
        assert count_rows(engine, stock_splits) == 5


def test_a_corrected_answer_replaces_the_tickers_splits(engine: Engine) -> None:
    replace_splits(engine, {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, fetched_at=T1)
    odd_before = split_rows(engine)[2:]
    # The 2014 split was a data error, withdrawn; a 2:1 one is new.
    corrected = [AAPL_SPLITS[1], split("AAPL", date(2025, 3, 3), "2", "1")]
    done = replace_splits(engine, {"AAPL": corrected}, fetched_at=T2)
    assert (done.changed, done.kept_on_empty) == (["AAPL"], [])
    assert (done.rows_written, done.rows_removed) == (2, 1)
    assert read_splits(engine) == {"AAPL": corrected, "ODD": ODD_SPLITS}
    assert split_rows(engine)[2:] == odd_before  # ODD untouched, fetched_at included
    with engine.connect() as conn:
        aapl = sa.select(stock_splits.c.fetched_at).where(stock_splits.c.ticker == "AAPL")
        assert set(conn.scalars(aapl)) == {T2}


def test_a_changed_ratio_or_type_on_the_same_date_is_a_change(engine: Engine) -> None:
    replace_splits(engine, {"AAPL": AAPL_SPLITS}, fetched_at=T1)
    for answer in (
        [AAPL_SPLITS[0], split("AAPL", date(2020, 8, 31), "5", "1")],
        [AAPL_SPLITS[0], split("AAPL", date(2020, 8, 31), "5", "1", "forward")],
    ):
        done = replace_splits(engine, {"AAPL": answer}, fetched_at=T2)
        assert (done.changed, done.rows_removed) == (["AAPL"], 0)
        assert read_splits(engine) == {"AAPL": answer}


def test_an_empty_answer_keeps_the_stored_splits(engine: Engine) -> None:
    replace_splits(engine, {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, fetched_at=T1)
    before = split_rows(engine)
    done = replace_splits(engine, {"AAPL": [], "NEW": [], "ODD": ODD_SPLITS}, fetched_at=T2)
    # NEW had nothing stored: its empty answer keeps nothing and is no news.
    assert (done.kept_on_empty, done.changed) == (["AAPL"], [])
    assert (done.rows_written, done.rows_removed) == (3, 0)
    after = split_rows(engine)
    assert after[:2] == before[:2]  # AAPL's rows as they were, fetched_at included
    assert read_splits(engine) == {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}
    assert count_rows(engine, stock_splits) == 5


def test_a_first_answer_for_a_ticker_is_a_change(engine: Engine) -> None:
    replace_splits(engine, {"AAPL": AAPL_SPLITS}, fetched_at=T1)
    done = replace_splits(engine, {"AAPL": AAPL_SPLITS, "ODD": ODD_SPLITS}, fetched_at=T2)
    assert done.changed == ["ODD"]
    assert replace_splits(engine, {}, fetched_at=T3).rows_written == 0
    assert count_rows(engine, stock_splits) == 5


# --- dividends ------------------------------------------------------------------------------------


def dividend(
    symbol: str,
    day: date,
    amount: str,
    adjusted: str | None = None,
    *,
    record: date | None = None,
    payment: date | None = None,
    declared: date | None = None,
    frequency: str | None = "Quarterly",
) -> Dividend:
    return Dividend(
        symbol=symbol,
        ex_date=day,
        dividend=Decimal(amount),
        adj_dividend=None if adjusted is None else Decimal(adjusted),
        record_date=record,
        payment_date=payment,
        declaration_date=declared,
        frequency=frequency,
    )


KO = [
    dividend(
        "KO",
        date(2025, 3, 14),
        "0.51",
        "0.51",
        record=date(2025, 3, 14),
        payment=date(2025, 4, 1),
        declared=date(2025, 2, 13),
    ),
    # Announced, not yet dated: FMP's empty dates are NULL.
    dividend("KO", date(2025, 6, 13), "0.2475", "0.061875", frequency=None),
]
MSFT = [dividend("MSFT", date(2025, 2, 20), "0.83", None, payment=date(2025, 3, 13))]


def test_dividends_are_written_exactly_with_null_dates(engine: Engine) -> None:
    done = replace_dividends(engine, {"KO": KO, "MSFT": MSFT}, fetched_at=T1)
    assert (done.rows_written, done.changed, done.kept_on_empty) == (3, ["KO", "MSFT"], [])
    found = read_dividends(engine)
    assert found == {"KO": KO, "MSFT": MSFT}
    announced = found["KO"][1]
    assert (str(announced.dividend), str(announced.adj_dividend)) == ("0.2475", "0.061875")
    assert (announced.record_date, announced.payment_date, announced.declaration_date) == (
        None,
        None,
        None,
    )
    assert announced.frequency is None
    assert found["MSFT"][0].adj_dividend is None
    assert read_dividends(engine, ["MSFT"]) == {"MSFT": MSFT}


def test_dividends_the_same_again_respelled_change_nothing(engine: Engine) -> None:
    replace_dividends(engine, {"KO": KO, "MSFT": MSFT}, fetched_at=T1)
    respelled = [
        dataclasses.replace(KO[0], dividend=Decimal("0.510"), adj_dividend=Decimal("0.5100")),
        dataclasses.replace(KO[1], dividend=Decimal("0.24750")),
    ]
    for answer in (KO, respelled, respelled):
        done = replace_dividends(engine, {"KO": answer}, fetched_at=T2)
        assert (done.changed, done.kept_on_empty, done.rows_removed) == ([], [], 0)
        assert read_dividends(engine) == {"KO": KO, "MSFT": MSFT}
        assert count_rows(engine, dividends) == 3


def test_a_corrected_dividend_answer_replaces_and_an_empty_one_keeps(engine: Engine) -> None:
    replace_dividends(engine, {"KO": KO, "MSFT": MSFT}, fetched_at=T1)
    msft_before = dividend_rows(engine)[2:]
    # The announced dividend gets its dates; the March one is withdrawn; a new one appears.
    dated = dataclasses.replace(KO[1], record_date=date(2025, 6, 13), payment_date=date(2025, 7, 1))
    corrected = [dated, dividend("KO", date(2025, 9, 15), "0.51")]
    done = replace_dividends(engine, {"KO": corrected, "MSFT": []}, fetched_at=T2)
    assert (done.changed, done.kept_on_empty) == (["KO"], ["MSFT"])
    assert (done.rows_written, done.rows_removed) == (2, 1)
    assert read_dividends(engine) == {"KO": corrected, "MSFT": MSFT}
    assert dividend_rows(engine)[2:] == msft_before

    # Re-running the same refresh: same rows, no duplicates, nothing changed.
    done = replace_dividends(engine, {"KO": corrected, "MSFT": []}, fetched_at=T3)
    assert (done.changed, done.kept_on_empty) == ([], ["MSFT"])
    assert read_dividends(engine) == {"KO": corrected, "MSFT": MSFT}
    assert count_rows(engine, dividends) == 3


def test_splits_and_dividends_do_not_touch_each_other(engine: Engine) -> None:
    replace_splits(engine, {"KO": [split("KO", date(2012, 8, 13), "2", "1")]}, fetched_at=T1)
    replace_dividends(engine, {"KO": KO}, fetched_at=T1)
    replace_splits(engine, {"KO": [split("KO", date(1996, 5, 13), "2", "1")]}, fetched_at=T2)
    assert read_dividends(engine) == {"KO": KO}
    assert [s.ex_date for s in read_splits(engine)["KO"]] == [date(1996, 5, 13)]
