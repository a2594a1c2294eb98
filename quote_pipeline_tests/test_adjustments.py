"""The adjustment convention, checked against an independent exact (Fraction) computation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from quote_pipeline.adjustments import (
    RawDay,
    adjust_history,
    as_traded,
    effective_actions,
)
from quote_pipeline.price_bars import SPLIT_ADJUSTED
from quote_pipeline.reference_data import Dividend, StockSplit
from quote_pipeline_tests.support.convention import reference
from quote_pipeline_tests.support.days import weekdays


def history(days: list[date], closes: list[str]) -> list[RawDay]:
    rows = []
    for day, close in zip(days, closes, strict=True):
        c = Decimal(close)
        rows.append(RawDay(day, c - 1, c + 2, c - 3, c, 1_000_003))
    return rows


def split(day: date, num: int | str, den: int | str) -> StockSplit:
    return StockSplit("ABC", day, Decimal(num), Decimal(den), "stock-split")


def dividend(day: date, amount: str) -> Dividend:
    return Dividend("ABC", day, Decimal(amount), None, None, None, None, "Quarterly")


def as_tuples(adjusted: list) -> list[tuple[Decimal, Decimal, Decimal, Decimal, int]]:
    return [(a.adj_open, a.adj_high, a.adj_low, a.adj_close, a.adj_volume) for a in adjusted]


DAYS = weekdays(date(2026, 1, 5), 30)
CLOSES = [str(Decimal("400.00") + i) for i in range(10)]
CLOSES += [str(Decimal("102.37") + i) for i in range(10)]  # after a 4:1 split
CLOSES += [str(Decimal("1023.70") + 10 * i) for i in range(10)]  # after a 1:10 reverse split


def test_a_forward_and_a_reverse_split_match_the_convention_exactly() -> None:
    rows = history(DAYS, CLOSES)
    splits = [split(DAYS[10], 4, 1), split(DAYS[20], 1, 10)]
    actions = effective_actions(splits, [], as_of=DAYS[-1])
    adjusted = adjust_history("ABC", rows, actions)
    assert as_tuples(adjusted) == reference(rows, splits, [])
    # Days before the forward split: ÷4 then x10 (the reverse split) = x2.5.
    assert adjusted[0].split_factor == Decimal("0.4")
    assert adjusted[0].adj_close == Decimal("1000.00000000")
    assert adjusted[10].split_factor == Decimal("0.1")
    assert adjusted[-1].split_factor == Decimal(1)
    assert adjusted[-1].adj_close == rows[-1].close
    # Volume moves the other way: fewer, bigger shares before a reverse split.
    assert adjusted[0].adj_volume == round(Fraction(1_000_003) * Fraction(2, 5))


def test_dividends_adjust_by_the_previous_raw_close() -> None:
    rows = history(DAYS[:12], CLOSES[:12])
    dividends = [dividend(DAYS[3], "0.82"), dividend(DAYS[8], "1.07")]
    splits = [split(DAYS[10], 4, 1)]
    adjusted = adjust_history("ABC", rows, effective_actions(splits, dividends, DAYS[-1]))
    assert as_tuples(adjusted) == reference(rows, splits, dividends)
    expected = (1 - Fraction("0.82") / Fraction(CLOSES[2])) * (
        1 - Fraction("1.07") / Fraction(CLOSES[7])
    )
    # Stored rounded to 12 places, for display.
    exact = Decimal(expected.numerator) / Decimal(expected.denominator)
    assert abs(adjusted[0].dividend_factor - exact) <= Decimal("5e-13")
    assert adjusted[9].dividend_factor == 1


@pytest.mark.parametrize(("num", "den"), [(3, 2), (2, 3), (7, 1), (1, 8), ("1.5", 1)])
def test_awkward_ratios_round_once_like_the_exact_computation(num: object, den: object) -> None:
    rows = history(DAYS[:6], ["10.01", "10.33", "9.99", "7.77", "6.66", "6.67"])
    splits = [split(DAYS[3], num, den)]  # type: ignore[arg-type]
    adjusted = adjust_history("ABC", rows, effective_actions(splits, [], DAYS[-1]))
    assert as_tuples(adjusted) == reference(rows, splits, [])


def test_actions_after_as_of_and_invalid_splits_are_not_applied() -> None:
    rows = history(DAYS[:10], CLOSES[:10])
    splits = [split(DAYS[5], 4, 1), split(DAYS[3], 1, 1), split(DAYS[2], 0, 1)]
    before = effective_actions(splits, [dividend(DAYS[6], "1")], as_of=DAYS[4])
    assert before.splits == () and before.dividends == ()
    adjusted = adjust_history("ABC", rows, before)
    assert [a.adj_close for a in adjusted] == [r.close.quantize(Decimal("1e-8")) for r in rows]
    after = effective_actions(splits, [], as_of=DAYS[5])
    assert [s.ex_date for s in after.splits] == [DAYS[5]]
    assert before.fingerprint() != after.fingerprint()


def test_a_legacy_row_is_brought_back_to_as_traded_by_the_splits_up_to_its_fetch_day() -> None:
    # Fetched from /full on DAYS[12]: the 4:1 split of DAYS[10] was applied, a later one not.
    legacy = RawDay(
        DAYS[2],
        Decimal("126.01"),
        Decimal("127"),
        Decimal("125.5"),
        Decimal("126.5"),
        4_000,
        SPLIT_ADJUSTED,
        DAYS[12],
    )
    splits = [split(DAYS[10], 4, 1), split(DAYS[15], 2, 1)]
    raw = as_traded(legacy, splits)
    assert (raw.open, raw.close, raw.volume) == (Decimal("504.04"), Decimal("506.0"), 1_000)
    adjusted = adjust_history("ABC", [legacy], effective_actions(splits, [], DAYS[-1]))
    # As traded 504.04, ÷ 8 for both splits after it.
    assert adjusted[0].adj_open == Decimal("63.00500000")
    assert adjusted[0].adj_volume == 8_000


def test_appending_a_day_after_the_latest_ex_date_changes_no_earlier_row() -> None:
    rows = history(DAYS[:20], CLOSES[:20])
    actions = effective_actions([split(DAYS[10], 4, 1)], [dividend(DAYS[12], "0.5")], DAYS[-1])
    first = adjust_history("ABC", rows[:19], actions)
    second = adjust_history("ABC", rows, actions)
    assert second[:19] == first
    assert second[19].split_factor == 1 and second[19].dividend_factor == 1


def test_a_dividend_without_an_earlier_stored_session_or_worth_the_price_is_skipped() -> None:
    rows = history(DAYS[2:6], CLOSES[2:6])
    dividends = [dividend(DAYS[1], "3"), dividend(DAYS[4], "999")]
    adjusted = adjust_history("ABC", rows, effective_actions([], dividends, DAYS[-1]))
    assert all(a.dividend_factor == 1 for a in adjusted)


def test_a_dividend_on_a_split_day_is_per_new_share_and_gaps_change_nothing() -> None:
    # A 2:1 split and a 1.00 dividend on the same ex-date: 100 -> 49 is no loss (2 x 49 + 2).
    rows = history(DAYS[:4], ["100", "100", "49", "49"])
    actions = effective_actions([split(DAYS[2], 2, 1)], [dividend(DAYS[2], "1")], DAYS[-1])
    adjusted = adjust_history("ABC", rows, actions)
    assert adjusted[1].dividend_factor == Decimal("0.98")
    assert [a.adj_close for a in adjusted] == [Decimal("49")] * 4
    assert as_tuples(adjusted) == reference(rows, actions.splits, actions.dividends)
    # The split on day 2, the dividend on day 3, day 2 not stored: the same factor.
    rows = history([DAYS[0], DAYS[1], DAYS[3]], ["100", "100", "49"])
    gap = effective_actions([split(DAYS[2], 2, 1)], [dividend(DAYS[3], "1")], DAYS[-1])
    assert adjust_history("ABC", rows, gap)[0].dividend_factor == Decimal("0.98")
