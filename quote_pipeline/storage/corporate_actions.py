"""Writes and reads of reference data and corporate actions: ``company_profiles``,
``stock_splits``, ``dividends``. Every write is one transaction.

Profiles are never deleted: a ticker the API stops answering for is flagged ``gone`` (with
the refresh that first missed it), one the API calls not actively trading ``not_trading``.
A ticker's splits (or dividends) are replaced only by a clean, non-empty answer: the API's
list is the truth for that ticker (a corrected or withdrawn split disappears), while an empty
answer — a glitch as likely as a truth, and the one that would silently re-base a history —
keeps what is stored and is reported.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from quote_pipeline.compat import batched
from quote_pipeline.reference_data import CompanyProfile, Dividend, StockSplit
from quote_pipeline.storage.repository import (
    IN_LIST_LIMIT,
    Bind,
    dialect_insert,
    transaction,
)
from quote_pipeline.storage.schema import company_profiles, dividends, stock_splits, tickers

ACTIVE = "active"
NOT_TRADING = "not_trading"
GONE = "gone"

_PROFILE_FIELDS = (
    "company_name",
    "exchange",
    "exchange_full_name",
    "currency",
    "country",
    "sector",
    "industry",
    "market_cap",
    "is_etf",
    "is_fund",
    "is_adr",
    "is_actively_trading",
    "ipo_date",
    "cik",
    "isin",
    "cusip",
    "website",
    "description",
)


# --- profiles ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """What one profiles refresh changed."""

    written: int
    newly_gone: list[str]
    not_trading: list[str]


def _profile_row(profile: CompanyProfile) -> dict[str, Any]:
    return {
        "ticker": profile.symbol,
        **{name: getattr(profile, name) for name in _PROFILE_FIELDS},
        "status": NOT_TRADING if profile.is_actively_trading is False else ACTIVE,
        "missing_since": None,
        "fetched_at": profile.fetched_at,
    }


def write_profiles(
    bind: Bind, profiles: Sequence[CompanyProfile], *, gone: Sequence[str], now: datetime
) -> ProfileWrite:
    """Upsert ``profiles``; flag the stored profiles of ``gone`` tickers (the API answered
    with no profile) as gone, keeping every other column. One transaction."""
    with transaction(bind) as conn:
        if profiles:
            insert = dialect_insert(conn, company_profiles)
            updated = (*_PROFILE_FIELDS, "status", "missing_since", "fetched_at")
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["ticker"], set_={c: insert.excluded[c] for c in updated}
                ),
                [_profile_row(p) for p in profiles],
            )
        newly_gone: list[str] = []
        for chunk in batched(sorted(set(gone)), IN_LIST_LIMIT):
            newly_gone += conn.scalars(
                sa.update(company_profiles)
                .where(
                    company_profiles.c.ticker.in_(chunk),
                    company_profiles.c.status != GONE,
                )
                .values(status=GONE, missing_since=now)
                .returning(company_profiles.c.ticker)
            ).all()
    not_trading = sorted(p.symbol for p in profiles if p.is_actively_trading is False)
    return ProfileWrite(len(profiles), sorted(newly_gone), not_trading)


def tickers_without_profile(bind: Bind) -> list[str]:
    """Tracked tickers that have no stored profile (new ones, or never answered)."""
    query = (
        sa.select(tickers.c.ticker)
        .outerjoin(company_profiles, company_profiles.c.ticker == tickers.c.ticker)
        .where(company_profiles.c.ticker.is_(None))
        .order_by(tickers.c.ticker)
    )
    with transaction(bind) as conn:
        return list(conn.scalars(query))


@dataclass(frozen=True, slots=True)
class ProfileCounts:
    """How the stored profiles of tracked tickers spread over sectors, exchanges, statuses."""

    by_sector: dict[str, int]
    by_exchange: dict[str, int]
    by_status: dict[str, int]


def profile_counts(bind: Bind) -> ProfileCounts:
    query = sa.select(
        company_profiles.c.sector, company_profiles.c.exchange, company_profiles.c.status
    ).join(tickers, tickers.c.ticker == company_profiles.c.ticker)
    sectors: Counter[str] = Counter()
    exchanges: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    with transaction(bind) as conn:
        for sector, exchange, status in conn.execute(query):
            sectors[sector or "(none)"] += 1
            exchanges[exchange or "(none)"] += 1
            statuses[status] += 1
    return ProfileCounts(
        dict(sectors.most_common()), dict(exchanges.most_common()), dict(statuses.most_common())
    )


def read_profiles(bind: Bind, symbols: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Stored profiles (all, or of ``symbols``), as column -> value, by ticker."""
    query = sa.select(company_profiles).order_by(company_profiles.c.ticker)
    if symbols is not None:
        query = query.where(company_profiles.c.ticker.in_(list(symbols)))
    with transaction(bind) as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


# --- splits and dividends ------------------------------------------------------------------------


@dataclass
class ActionsWrite:
    """What one refresh of a corporate-action table changed, per ticker."""

    rows_written: int = 0
    rows_removed: int = 0
    changed: list[str] = field(default_factory=list)  # tickers whose rows differ from before
    kept_on_empty: list[str] = field(default_factory=list)  # empty answer, stored rows kept


def _split_row(split: StockSplit) -> dict[str, Any]:
    return {
        "ticker": split.symbol,
        "ex_date": split.ex_date,
        "numerator": split.numerator,
        "denominator": split.denominator,
        "split_type": split.split_type,
    }


def _dividend_row(dividend: Dividend) -> dict[str, Any]:
    return {
        "ticker": dividend.symbol,
        "ex_date": dividend.ex_date,
        "dividend": dividend.dividend,
        "adj_dividend": dividend.adj_dividend,
        "record_date": dividend.record_date,
        "payment_date": dividend.payment_date,
        "declaration_date": dividend.declaration_date,
        "frequency": dividend.frequency,
    }


def _comparable(row: Mapping[str, Any]) -> tuple[Any, ...]:
    # Decimals compare by value (4 == 4.0), so a re-fetch that spells a number differently
    # is no change.
    return tuple(row[c] for c in sorted(row) if c not in ("ticker", "fetched_at"))


def _replace_actions(
    bind: Bind,
    table: sa.Table,
    answers: Mapping[str, Sequence[dict[str, Any]]],
    fetched_at: datetime,
) -> ActionsWrite:
    result = ActionsWrite()
    with transaction(bind) as conn:
        stored: defaultdict[str, dict[Any, tuple[Any, ...]]] = defaultdict(dict)
        for chunk in batched(sorted(answers), IN_LIST_LIMIT):
            for row in conn.execute(sa.select(table).where(table.c.ticker.in_(chunk))):
                mapping = dict(row._mapping)
                stored[mapping["ticker"]][mapping["ex_date"]] = _comparable(mapping)
        replaced: list[str] = []
        rows: list[dict[str, Any]] = []
        for ticker, answer in sorted(answers.items()):
            if not answer:
                if stored.get(ticker):
                    result.kept_on_empty.append(ticker)
                continue
            fresh = {row["ex_date"]: _comparable(row) for row in answer}
            if fresh != stored.get(ticker, {}):
                result.changed.append(ticker)
            result.rows_removed += len(set(stored.get(ticker, {})) - set(fresh))
            replaced.append(ticker)
            rows += [{**row, "fetched_at": fetched_at} for row in answer]
        for chunk in batched(replaced, IN_LIST_LIMIT):
            conn.execute(sa.delete(table).where(table.c.ticker.in_(chunk)))
        if rows:
            conn.execute(sa.insert(table), rows)
        result.rows_written = len(rows)
    return result


def replace_splits(
    bind: Bind, answers: Mapping[str, Sequence[StockSplit]], *, fetched_at: datetime
) -> ActionsWrite:
    """Make each answered ticker's stored splits exactly its non-empty answer (one
    transaction); an empty answer keeps the stored ones."""
    rows = {t: [_split_row(s) for s in splits] for t, splits in answers.items()}
    return _replace_actions(bind, stock_splits, rows, fetched_at)


def replace_dividends(
    bind: Bind, answers: Mapping[str, Sequence[Dividend]], *, fetched_at: datetime
) -> ActionsWrite:
    """As :func:`replace_splits`, for dividends."""
    rows = {t: [_dividend_row(d) for d in events] for t, events in answers.items()}
    return _replace_actions(bind, dividends, rows, fetched_at)


def read_splits(bind: Bind, symbols: Iterable[str] | None = None) -> dict[str, list[StockSplit]]:
    """Stored splits per ticker, oldest first."""
    query = sa.select(stock_splits).order_by(stock_splits.c.ticker, stock_splits.c.ex_date)
    if symbols is not None:
        query = query.where(stock_splits.c.ticker.in_(list(symbols)))
    found: dict[str, list[StockSplit]] = defaultdict(list)
    with transaction(bind) as conn:
        for row in conn.execute(query):
            found[row.ticker].append(
                StockSplit(row.ticker, row.ex_date, row.numerator, row.denominator, row.split_type)
            )
    return dict(found)


def read_dividends(bind: Bind, symbols: Iterable[str] | None = None) -> dict[str, list[Dividend]]:
    """Stored dividends per ticker, oldest first."""
    query = sa.select(dividends).order_by(dividends.c.ticker, dividends.c.ex_date)
    if symbols is not None:
        query = query.where(dividends.c.ticker.in_(list(symbols)))
    found: dict[str, list[Dividend]] = defaultdict(list)
    with transaction(bind) as conn:
        for row in conn.execute(query):
            found[row.ticker].append(
                Dividend(
                    symbol=row.ticker,
                    ex_date=row.ex_date,
                    dividend=row.dividend,
                    adj_dividend=row.adj_dividend,
                    record_date=row.record_date,
                    payment_date=row.payment_date,
                    declaration_date=row.declaration_date,
                    frequency=row.frequency,
                )
            )
    return dict(found)


__all__ = [
    "ACTIVE",
    "GONE",
    "NOT_TRADING",
    "ActionsWrite",
    "ProfileCounts",
    "ProfileWrite",
    "profile_counts",
    "read_dividends",
    "read_profiles",
    "read_splits",
    "replace_dividends",
    "replace_splits",
    "tickers_without_profile",
    "write_profiles",
]
