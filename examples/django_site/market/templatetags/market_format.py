"""Formatting for the pages: exact decimals as stored, statistics rounded for reading."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

register = template.Library()

MISSING = "\N{EM DASH}"


def exact_text(value: Decimal | None) -> str | None:
    """A stored exact decimal as text with every digit the table holds (``'232.80'``), in
    positional notation (never ``1E-8``); None stays None."""
    return None if value is None else format(value, "f")


@register.filter
def exact(value: Decimal | None) -> str:
    """An exact price exactly as stored."""
    text = exact_text(value)
    return MISSING if text is None else text


@register.filter
def exact_grouped(value: Decimal | None) -> str:
    """An exact amount with thousands separators, every digit kept (``2,875,640,000,000``)."""
    return MISSING if value is None else format(value, ",f")


@register.filter
def signed_exact(value: Decimal | None) -> str:
    """An exact change with its sign (``+1.20``, ``-0.35``)."""
    text = exact_text(value)
    if text is None:
        return MISSING
    return text if text.startswith("-") or value == 0 else f"+{text}"


@register.filter
def thousands(value: int | None) -> str:
    """A whole number with thousands separators."""
    return MISSING if value is None else f"{value:,}"


@register.filter
def number(value: float | None, places: int = 2) -> str:
    """A statistic rounded to ``places`` decimals."""
    return MISSING if value is None else f"{value:,.{int(places)}f}"


@register.filter
def percent(value: float | None, places: int = 2) -> str:
    """A fraction as a percentage (``0.0123`` → ``1.23%``)."""
    return MISSING if value is None else f"{value * 100:.{int(places)}f}%"


@register.filter
def signed_percent(value: float | Decimal | None, places: int = 2) -> str:
    """A fraction as a signed percentage (``+1.23%``)."""
    return MISSING if value is None else f"{float(value) * 100:+.{int(places)}f}%"


@register.filter
def tone(value: Any) -> str:
    """CSS class for a signed value: ``up``, ``down`` or ``flat``."""
    if value is None:
        return "flat"
    return "up" if value > 0 else "down" if value < 0 else "flat"


@register.filter
def http_url(value: str | None) -> str:
    """``value`` when it is an http(s) link, else empty: stored links are data, and a
    ``javascript:`` one must never become an ``href``."""
    if value and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return ""
