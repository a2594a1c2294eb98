"""Reading numbers out of FMP's JSON rows (decoded with ``parse_float=Decimal``), strictly.

Shared by the quote and the history parsers, so both refuse the same things: a missing or
non-numeric field, NaN or infinity, a fractional or out-of-range volume.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

INT64_LIMIT = 2**63


def number(row: dict[str, Any], key: str, *, required: bool = True) -> Decimal | None:
    """``row[key]`` as an exact Decimal; None when absent and not ``required``."""
    value = row.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"{key} must be a number, got {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{key} must be finite, got {value!r}")
    return result


def required_number(row: dict[str, Any], key: str) -> Decimal:
    result = number(row, key)
    assert result is not None  # number() raises for a missing required field
    return result


def whole_number(row: dict[str, Any], key: str) -> int:
    """``row[key]`` as a 64-bit integer (``1.0E7`` is fine, ``1.5`` is not)."""
    result = required_number(row, key)
    if result != result.to_integral_value():
        raise ValueError(f"{key} must be a whole number, got {result}")
    if abs(result) >= INT64_LIMIT:
        raise ValueError(f"{key} {result} does not fit in 64 bits")
    return int(result)
