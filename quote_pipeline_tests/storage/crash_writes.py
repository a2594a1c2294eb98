"""The writes the crash tests kill half-way: ``python -m quote_pipeline_tests.storage.crash_writes
WRITE DATABASE_URL``, run with ``QUOTE_PIPELINE_TEST_FAULT`` set (see storage/faults.py).

The same functions run in the test process for the rerun, so the killed write and the one
that completes are the same write. Each one's data is fixed here, and differs from what
:func:`seed` stores first, so a write that was not rolled back shows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine

from quote_pipeline.models import Quote
from quote_pipeline.price_bars import DailyBar, IntradayBar
from quote_pipeline.storage import create_db_engine, write_quotes
from quote_pipeline.storage.history import replace_daily_prices, upsert_intraday_bars

SEEDED_AT = datetime(2026, 11, 24, 15, 1, tzinfo=UTC)
LATER = SEEDED_AT + timedelta(hours=1)
DAYS = [date(2026, 11, 23), date(2026, 11, 24)]
BAR_STARTS = [
    datetime(2026, 11, 24, 14, 30, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(4)
]
SYMBOLS = ("AAPL", "MSFT")


def _quotes(price: str, at: datetime) -> list[Quote]:
    return [Quote(s, Decimal(price), 100, Decimal("0.5"), at, at) for s in SYMBOLS]


def _daily(close: str, at: datetime) -> list[DailyBar]:
    c = Decimal(close)
    return [DailyBar(s, d, c, c, c, c, 1_000, None, None, None, at) for s in SYMBOLS for d in DAYS]


def _intraday(close: str, at: datetime) -> list[IntradayBar]:
    c = Decimal(close)
    return [IntradayBar("AAPL", t, c, c, c, c, 10, at) for t in BAR_STARTS]


def seed(engine: Engine) -> None:
    """The rows every crash test starts from: each write below would change all of them."""
    write_quotes(engine, _quotes("232.8", SEEDED_AT), written_at=SEEDED_AT)
    replace_daily_prices(engine, SYMBOLS, DAYS[0], DAYS[-1], _daily("10.5", SEEDED_AT))
    upsert_intraday_bars(engine, _intraday("10.5", SEEDED_AT))


def quotes(engine: Engine) -> None:
    write_quotes(engine, _quotes("240.25", LATER), written_at=LATER)


def daily(engine: Engine) -> None:
    replace_daily_prices(engine, SYMBOLS, DAYS[0], DAYS[-1], _daily("11.75", LATER))


def intraday(engine: Engine) -> None:
    # Two rows a statement: the crash point after the first chunk leaves two to go.
    upsert_intraday_bars(engine, _intraday("11.75", LATER), chunk_rows=2)


WRITES: dict[str, Callable[[Engine], None]] = {
    "quotes": quotes,
    "daily": daily,
    "intraday": intraday,
}


if __name__ == "__main__":
    write, url = sys.argv[1:]
    WRITES[write](create_db_engine(url, upgrade=False))
    sys.exit(0)  # reached only if the crash point did not fire; the test says so
