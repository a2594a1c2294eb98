"""The README's adjustment convention written out independently, with exact Fractions, day by
day: what the adjusted history must equal (after rounding half to even at the stored scale)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from quote_pipeline.adjustments import PRICE_PLACES, RawDay
from quote_pipeline.reference_data import Dividend, StockSplit

Adjusted = tuple[Decimal, Decimal, Decimal, Decimal, int]


def rounded(value: Fraction) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)  # a sanity bound only
    # Round the Fraction itself, half to even, at PRICE_PLACES: no Decimal context involved.
    scaled = value * 10**PRICE_PLACES
    whole = scaled.numerator // scaled.denominator
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    result = Decimal(whole).scaleb(-PRICE_PLACES)
    assert abs(result - exact) <= Decimal(1).scaleb(-PRICE_PLACES)
    return result


def reference(
    rows: Sequence[RawDay], splits: Sequence[StockSplit], dividends: Sequence[Dividend]
) -> list[Adjusted]:
    """The README's convention, written out with Fractions, day by day (quadratic, plain)."""
    closes = {r.day: Fraction(r.close) for r in rows}
    days = sorted(closes)
    out = []
    for row in rows:
        split_factor = Fraction(1)
        for s in splits:
            if s.ex_date > row.day:
                split_factor *= Fraction(s.numerator) / Fraction(s.denominator)
        dividend_factor = Fraction(1)
        for d in dividends:
            if d.ex_date > row.day:
                previous = max(day for day in days if day < d.ex_date)
                # The close per the dividend's share: splits after it, up to the ex-date.
                close = closes[previous]
                for s in splits:
                    if previous < s.ex_date <= d.ex_date:
                        close /= Fraction(s.numerator) / Fraction(s.denominator)
                dividend_factor *= 1 - Fraction(d.dividend) / close
        factor = dividend_factor / split_factor
        volume = Fraction(row.volume) * split_factor
        whole = round(volume)  # Python rounds half to even
        out.append(
            (
                rounded(Fraction(row.open) * factor),
                rounded(Fraction(row.high) * factor),
                rounded(Fraction(row.low) * factor),
                rounded(Fraction(row.close) * factor),
                whole,
            )
        )
    return out
