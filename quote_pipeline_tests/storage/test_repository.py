"""The storage layer on SQLite and on the session's PostgreSQL database."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from quote_pipeline.models import InvalidSymbolError, Quote
from quote_pipeline.storage import (
    add_tickers,
    count_snapshots,
    create_db_engine,
    list_tickers,
    read_stocks,
    remove_tickers,
    write_quotes,
)
from quote_pipeline.storage.repository import stocks_by_source
from quote_pipeline.storage.schema import quote_snapshots

NOW = datetime(2026, 11, 24, 15, 1, tzinfo=UTC)


def quote(symbol: str, price: str, volume: int, at: datetime = NOW, source: str = "fmp") -> Quote:
    return Quote(symbol, Decimal(price), volume, Decimal("-0.01"), at, at, source)


def test_tickers_add_list_remove(engine: Engine) -> None:
    assert add_tickers(engine, ["msft", "BRK.B", "^gspc"], now=NOW) == ["BRK.B", "MSFT", "^GSPC"]
    assert add_tickers(engine, ["MSFT", "aapl"], now=NOW) == ["AAPL"]
    assert list_tickers(engine) == ["AAPL", "BRK.B", "MSFT", "^GSPC"]
    assert remove_tickers(engine, ["msft", "NOPE"]) == ["MSFT"]
    assert list_tickers(engine) == ["AAPL", "BRK.B", "^GSPC"]


def test_a_bad_symbol_adds_nothing(engine: Engine) -> None:
    with pytest.raises(InvalidSymbolError, match="'BAD;'"):
        add_tickers(engine, ["AAPL", "BAD;"], now=NOW)
    assert list_tickers(engine) == []


def test_prices_stay_exact_and_volumes_64_bit(engine: Engine) -> None:
    quotes = [
        quote("AAPL", "232.8", 2**33 + 7),
        quote("BTCUSD", "0.00001234", 9_876_543_210),
        quote("BRK.A", "712345.123456789012", 2**62),
    ]
    write_quotes(engine, quotes, written_at=NOW)
    rows = {r.ticker: r for r in read_stocks(engine)}
    assert rows["AAPL"].price == Decimal("232.8")
    assert rows["BTCUSD"].price == Decimal("0.00001234")
    assert rows["BRK.A"].price == Decimal("712345.123456789012")
    assert rows["BRK.A"].volume == 2**62
    assert all(isinstance(r.price, Decimal) for r in rows.values())


def test_timestamps_are_aware_utc_and_naive_ones_are_refused(engine: Engine) -> None:
    new_york = timezone(timedelta(hours=-5))
    at = datetime(2026, 11, 24, 10, 1, tzinfo=new_york)
    write_quotes(engine, [quote("AAPL", "1.5", 10, at)], written_at=NOW)
    (row,) = read_stocks(engine)
    assert row.quoted_at == at and row.quoted_at.tzinfo == UTC
    assert row.quoted_at.hour == 15
    with pytest.raises(ValueError, match="naive datetime"):
        write_quotes(engine, [quote("MSFT", "1", 1, datetime(2026, 11, 24))], written_at=NOW)


def test_rewriting_the_same_quotes_changes_nothing(engine: Engine) -> None:
    quotes = [quote("AAPL", "232.8", 100), quote("MSFT", "410.12", 200)]
    first = write_quotes(engine, quotes, written_at=NOW)
    second = write_quotes(engine, quotes, written_at=NOW)
    assert (first.snapshots_inserted, second.snapshots_inserted) == (2, 0)
    assert count_snapshots(engine) == 2
    assert [r.price for r in read_stocks(engine)] == [Decimal("232.8"), Decimal("410.12")]


def test_newer_quotes_update_and_older_ones_never_regress(engine: Engine) -> None:
    write_quotes(engine, [quote("AAPL", "232.8", 100)], written_at=NOW)
    later = NOW + timedelta(hours=1)
    summary = write_quotes(engine, [quote("AAPL", "233.1", 150, later)], written_at=later)
    assert summary.stocks_upserted == 1
    stale = write_quotes(engine, [quote("AAPL", "1", 1, NOW - timedelta(days=1))], written_at=later)
    assert (stale.stocks_upserted, stale.stale_skipped) == (0, 1)
    (row,) = read_stocks(engine)
    assert (row.price, row.volume, row.quoted_at) == (Decimal("233.1"), 150, later)
    assert count_snapshots(engine) == 3  # every observation is kept in the history


def snapshot_sources(engine: Engine) -> dict[tuple[str, datetime], str]:
    q = quote_snapshots.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(q.ticker, q.quoted_at, q.source)).all()
    return {(ticker, at): source for ticker, at, source in rows}


def test_each_row_records_the_provider_that_served_it(engine: Engine) -> None:
    assert stocks_by_source(engine) == {}
    assert Quote("X", Decimal(1), 1, None, NOW, NOW).source == "fmp"  # the default
    write_quotes(
        engine,
        [quote("AAPL", "232.8", 100), quote("MSFT", "410.12", 200, source="massive")],
        written_at=NOW,
    )
    assert {r.ticker: r.source for r in read_stocks(engine)} == {"AAPL": "fmp", "MSFT": "massive"}
    assert stocks_by_source(engine) == {"fmp": 1, "massive": 1}

    # A newer quote moves the row to its provider, with its price; an older one does not.
    later = NOW + timedelta(minutes=1)
    write_quotes(engine, [quote("AAPL", "233", 1, later, source="massive")], written_at=later)
    stale = write_quotes(
        engine, [quote("MSFT", "1", 1, NOW - timedelta(hours=1))], written_at=later
    )
    assert stale.stale_skipped == 1
    assert [(r.ticker, r.price, r.source) for r in read_stocks(engine)] == [
        ("AAPL", Decimal("233"), "massive"),
        ("MSFT", Decimal("410.12"), "massive"),
    ]
    assert stocks_by_source(engine) == {"massive": 2}
    # Every snapshot keeps the provider of its own quote.
    assert snapshot_sources(engine) == {
        ("AAPL", NOW): "fmp",
        ("MSFT", NOW): "massive",
        ("AAPL", later): "massive",
        ("MSFT", NOW - timedelta(hours=1)): "fmp",
    }
    with engine.connect() as conn:  # inside the caller's transaction too
        assert stocks_by_source(conn) == {"massive": 2}


def test_a_failing_write_leaves_both_tables_as_they_were(engine: Engine) -> None:
    write_quotes(engine, [quote("AAPL", "232.8", 100)], written_at=NOW)
    later = NOW + timedelta(hours=1)
    # The second row overflows BIGINT on PostgreSQL / is refused on SQLite: nothing lands.
    batch = [quote("AAPL", "240", 5, later), quote("MSFT", "410", 2**64, later)]
    with pytest.raises((sa.exc.DBAPIError, OverflowError, sa.exc.StatementError)):
        write_quotes(engine, batch, written_at=later)
    (row,) = read_stocks(engine)
    assert row.price == Decimal("232.8")
    assert count_snapshots(engine) == 1


def refuse_snapshots_of(engine: Engine, ticker: str) -> None:
    """Make the database refuse ``quote_snapshots`` rows of ``ticker`` (and only those)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION refuse_snapshot() RETURNS trigger LANGUAGE plpgsql "
                f"AS $$ BEGIN IF NEW.ticker = '{ticker}' THEN "
                "RAISE EXCEPTION 'snapshot refused'; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_snapshot BEFORE INSERT ON quote_snapshots "
                "FOR EACH ROW EXECUTE FUNCTION refuse_snapshot()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_snapshot BEFORE INSERT ON quote_snapshots "
                f"WHEN NEW.ticker = '{ticker}' BEGIN SELECT RAISE(ABORT, 'snapshot refused'); END"
            )


def test_a_write_the_snapshot_table_refuses_leaves_stocks_as_it_was(engine: Engine) -> None:
    # The failure comes from the second statement (the snapshot insert), after the stocks
    # upsert succeeded: only one transaction around both undoes that upsert.
    write_quotes(engine, [quote("AAPL", "232.8", 100)], written_at=NOW)
    refuse_snapshots_of(engine, "MSFT")
    later = NOW + timedelta(hours=1)
    batch = [quote("AAPL", "240", 5, later), quote("MSFT", "410", 7, later)]
    with pytest.raises(sa.exc.DBAPIError, match="snapshot refused"):
        write_quotes(engine, batch, written_at=later)
    assert [(r.ticker, r.price, r.quoted_at) for r in read_stocks(engine)] == [
        ("AAPL", Decimal("232.8"), NOW)
    ]
    assert count_snapshots(engine) == 1


def test_duplicate_tickers_in_one_write_are_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="same ticker twice"):
        write_quotes(engine, [quote("AAPL", "1", 1), quote("AAPL", "2", 2)], written_at=NOW)


def test_snapshot_uniqueness_is_enforced_by_the_database(engine: Engine) -> None:
    row = {"ticker": "AAPL", "price": Decimal(1), "volume": 1, "quoted_at": NOW, "fetched_at": NOW}
    with engine.begin() as conn:
        conn.execute(sa.insert(quote_snapshots), [row])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(quote_snapshots), [row])


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg2"])
def test_bare_and_explicit_postgresql_urls_both_work(postgres_url: str, driver: str) -> None:
    url = postgres_url.replace("postgresql://", f"{driver}://", 1)
    engine = create_db_engine(url)
    assert engine.dialect.driver == "psycopg2"
    add_tickers(engine, ["AAPL"], now=NOW)
    assert list_tickers(engine) == ["AAPL"]


def test_sqlite_default_lives_in_the_data_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QUOTE_PIPELINE_DATA_DIR", str(tmp_path / "here"))
    engine = create_db_engine()
    assert engine.url.database == str(tmp_path / "here" / "quote_pipeline.db")
    assert (tmp_path / "here" / "quote_pipeline.db").exists()
