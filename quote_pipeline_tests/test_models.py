"""Ticker symbol rules."""

import pytest

from quote_pipeline.models import InvalidSymbolError, normalize_symbol, normalize_symbols


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AAPL", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("brk-b", "BRK-B"),
        ("^GSPC", "^GSPC"),
        ("EURUSD=X", "EURUSD=X"),
        ("A" * 15, "A" * 15),
    ],
)
def test_valid_symbols_are_upper_cased(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", " ", "BRK B", "AAPL;", "DROP;TABLE", "'AAPL'", '"AAPL"', "A" * 16, "^", "ÄPPL"]
)
def test_invalid_symbols_are_refused_by_name(raw: str) -> None:
    with pytest.raises(InvalidSymbolError) as caught:
        normalize_symbol(raw)
    assert caught.value.symbols == [raw]
    assert repr(raw) in str(caught.value)


def test_one_bad_symbol_fails_the_whole_list_and_names_every_bad_one() -> None:
    with pytest.raises(InvalidSymbolError) as caught:
        normalize_symbols(["aapl", "bad sym", "MSFT", "x;y"])
    assert caught.value.symbols == ["bad sym", "x;y"]


def test_repeats_collapse_keeping_first_seen_order() -> None:
    assert normalize_symbols(["msft", "AAPL", "MSFT", "aapl"]) == ["MSFT", "AAPL"]
