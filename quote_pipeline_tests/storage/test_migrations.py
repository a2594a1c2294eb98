"""The schema under Alembic, on SQLite and on the session's PostgreSQL database: adoption of
databases made before migrations, the head against schema.py, locking, and `quote-pipeline db`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from quote_pipeline.storage import create_db_engine, schema_migrations
from quote_pipeline.storage.schema import metadata as head_metadata
from quote_pipeline.storage.schema_migrations import (
    BASELINE_REVISION,
    BASELINE_TABLES,
    MIGRATIONS_DIR,
    VERSION_TABLE,
    SchemaMigrationError,
    current_revision,
    ensure_schema,
    head_revision,
    known_revisions,
    new_revision,
    predates_migrations,
    upgrade,
)
from quote_pipeline_tests.conftest import drop_all_tables
from quote_pipeline_tests.storage import legacy_schema

BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 25, 15, 42, 30, 123456, tzinfo=UTC)
NEW_YORK = timezone(timedelta(hours=-5))
INT64_MAX = 2**63 - 1


@pytest.fixture
def empty_url(database_url: str) -> str:
    """The test's database with no tables at all, ``alembic_version`` included."""
    engine = create_db_engine(database_url, upgrade=False)
    drop_all_tables(engine)
    engine.dispose()
    return database_url


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = create_db_engine(empty_url, upgrade=False)
    yield engine
    engine.dispose()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script, as a user runs it (as test_cli.py does, without its Dagster)."""
    return subprocess.run(
        [str(BIN / "quote-pipeline"), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def differences(engine: Engine, target: sa.MetaData) -> list[Any]:
    """What autogenerate would write to bring the database to ``target``, with the options
    env.py uses (types compared, custom types through their dialect implementation)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, target)


def changes(found: list[Any]) -> set[tuple[str, str]]:
    """(kind, table) of each difference ``compare_metadata`` reports, flattened."""
    kinds = set()
    for diff in found:
        for op in diff if isinstance(diff, list) else [diff]:
            subject = op[1]
            if isinstance(subject, sa.Table):
                kinds.add((op[0], subject.name))
            elif isinstance(subject, sa.Index | sa.UniqueConstraint):
                kinds.add((op[0], subject.table.name))
            else:
                kinds.add((op[0], op[2]))
    return kinds


# --- a database made before migrations ------------------------------------------------------

LEGACY_ROWS: dict[str, list[dict[str, Any]]] = {
    "tickers": [
        {"ticker": "AAPL", "added_at": NOW},
        {"ticker": "^GSPC", "added_at": datetime(2020, 3, 8, 1, 59, 59, 999999, NEW_YORK)},
    ],
    "stocks": [
        {
            "ticker": "AAPL",
            "price": Decimal("232.8000000000000000000000000000000000000001"),
            "volume": INT64_MAX,
            "change": Decimal("-0.00001234000000000000000000009"),
            "quoted_at": NOW,
            "updated_at": NOW + timedelta(microseconds=1),
        },
        {
            "ticker": "BTCUSD",
            "price": Decimal("98765.43210987654321098765"),
            "volume": 0,
            "change": None,
            "quoted_at": datetime(2026, 3, 8, 2, 30, tzinfo=NEW_YORK),
            "updated_at": NOW,
        },
    ],
    "quote_snapshots": [
        {
            "ticker": "AAPL",
            "price": Decimal("232.80"),  # the trailing zero is kept, as written
            "volume": INT64_MAX - 1,
            "quoted_at": NOW,
            "fetched_at": NOW,
        },
        {
            "ticker": "AAPL",
            "price": Decimal("0.00000000000000000001"),
            "volume": 1,
            "quoted_at": NOW - timedelta(hours=1),
            "fetched_at": NOW,
        },
    ],
    "daily_prices": [
        {
            "ticker": "AAPL",
            "date": date(2026, 11, 24),
            "open": Decimal("230.1"),
            "high": Decimal("233.123456789012345678"),
            "low": Decimal("229.9999999999999999999"),
            "close": Decimal("232.8"),
            "volume": INT64_MAX,
            "change": Decimal("2.7"),
            "change_percent": Decimal("1.17321167883211678832116788321"),
            "vwap": None,
            "fetched_at": NOW,
        }
    ],
    "intraday_bars": [
        {
            "ticker": "AAPL",
            "bar_start": datetime(2026, 11, 24, 9, 30, tzinfo=NEW_YORK),
            "open": Decimal("230.10"),
            "high": Decimal("230.55"),
            "low": Decimal("229.97"),
            "close": Decimal("230.4444444444444444444444"),
            "volume": 4_000_000_000_000,
            "fetched_at": NOW,
        }
    ],
    "api_calls": [
        {"account": "a" * 64, "sent_at": 1_800_000_000.123456},
        {"account": "b" * 64, "sent_at": 1_800_000_059.999999},
    ],
}


def read_legacy_rows(
    engine: Engine, tables: Iterable[str] = tuple(legacy_schema.metadata.tables)
) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every legacy table, each value as its repr: ``Decimal('232.80')`` and
    ``Decimal('232.8')`` differ, and so do timestamps in different zones."""
    with engine.connect() as conn:
        return {
            name: [
                tuple(map(repr, row))
                for row in conn.execute(sa.select(table).order_by(*table.columns))
            ]
            for name, table in legacy_schema.metadata.tables.items()
            if name in tables
        }


def table_identities(engine: Engine) -> dict[str, Any]:
    """What a DROP and CREATE would change: the table's OID, or SQLite's root page."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = "SELECT relname, oid FROM pg_class WHERE relkind = 'r'"
        else:
            query = "SELECT name, rootpage FROM sqlite_master WHERE type = 'table'"
        found = dict(conn.exec_driver_sql(query).tuples().all())
    return {name: found[name] for name in BASELINE_TABLES}


def test_a_database_made_before_migrations_is_adopted_with_every_row(empty_engine: Engine) -> None:
    legacy_schema.metadata.create_all(empty_engine)
    with empty_engine.begin() as conn:
        for name, rows in LEGACY_ROWS.items():
            conn.execute(legacy_schema.metadata.tables[name].insert(), rows)
    before = read_legacy_rows(empty_engine)
    identities = table_identities(empty_engine)
    assert current_revision(empty_engine) is None
    assert predates_migrations(empty_engine)

    ensure_schema(empty_engine)

    assert current_revision(empty_engine) == head_revision()
    assert not predates_migrations(empty_engine)
    assert table_identities(empty_engine) == identities  # adopted, not re-created
    after = read_legacy_rows(empty_engine)
    assert after == before
    # And value for value what was written (timestamps come back in UTC).
    with empty_engine.connect() as conn:
        stocks = legacy_schema.metadata.tables["stocks"]
        stored = [r._asdict() for r in conn.execute(sa.select(stocks).order_by(stocks.c.ticker))]
    assert stored == LEGACY_ROWS["stocks"]
    assert str(stored[0]["price"]) == "232.8000000000000000000000000000000000000001"
    assert stored[1]["quoted_at"].tzinfo == UTC
    assert [len(rows) for rows in after.values()] == [len(r) for r in LEGACY_ROWS.values()]


def test_an_older_database_without_the_later_tables_gets_them(empty_engine: Engine) -> None:
    # The first release had only these three; create_all added the others when they came.
    first_release = ("tickers", "stocks", "quote_snapshots")
    legacy_schema.metadata.create_all(
        empty_engine, tables=[legacy_schema.metadata.tables[name] for name in first_release]
    )
    with empty_engine.begin() as conn:
        conn.execute(legacy_schema.metadata.tables["tickers"].insert(), LEGACY_ROWS["tickers"])
    before = read_legacy_rows(empty_engine, ["tickers"])

    upgrade(empty_engine, BASELINE_REVISION)

    assert current_revision(empty_engine) == BASELINE_REVISION
    assert table_names(empty_engine) == BASELINE_TABLES | {VERSION_TABLE}
    assert read_legacy_rows(empty_engine, ["tickers"]) == before
    assert differences(empty_engine, legacy_schema.metadata) == []


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    """Everything reflection shows of the data tables, types as the dialect spells them."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        snapshot: dict[str, Any] = {}
        for name in sorted(set(inspector.get_table_names()) - {VERSION_TABLE}):
            snapshot[name] = {
                "columns": [
                    {**column, "type": column["type"].compile(dialect=conn.dialect)}
                    for column in inspector.get_columns(name)
                ],
                "primary_key": inspector.get_pk_constraint(name),
                "unique": sorted(inspector.get_unique_constraints(name), key=repr),
                "indexes": sorted(inspector.get_indexes(name), key=repr),
                "comment": (
                    inspector.get_table_comment(name) if conn.dialect.supports_comments else None
                ),
            }
        if conn.dialect.name == "sqlite":
            snapshot["ddl"] = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
                f" WHERE tbl_name != '{VERSION_TABLE}' ORDER BY name"
            ).all()
        else:
            snapshot["sequences"] = sorted(inspector.get_sequence_names())
    return snapshot


def test_the_baseline_builds_what_create_all_built(empty_engine: Engine) -> None:
    legacy_schema.metadata.create_all(empty_engine)
    built_by_create_all = schema_snapshot(empty_engine)
    drop_all_tables(empty_engine)

    upgrade(empty_engine, BASELINE_REVISION)

    assert schema_snapshot(empty_engine) == built_by_create_all
    assert set(built_by_create_all) >= BASELINE_TABLES


# --- the head against schema.py ---------------------------------------------------------------


def test_the_head_is_what_schema_py_declares(engine: Engine) -> None:
    """Fails when schema.py changes without a migration: write one (see the README)."""
    assert current_revision(engine) == head_revision()
    assert differences(engine, head_metadata) == []


def test_the_comparison_sees_columns_types_and_comments(engine: Engine) -> None:
    # The check above is only worth something if a difference shows.
    changed = sa.MetaData()
    for table in head_metadata.tables.values():
        table.to_metadata(changed)
    stocks = changed.tables["stocks"]
    stocks.append_column(sa.Column("currency", sa.String(3), nullable=True))
    stocks.c.price.type = sa.Float()  # was an exact decimal
    stocks.comment = "Something else."
    stocks.c.volume.comment = "Something else."

    found = changes(differences(engine, changed))

    assert ("add_column", "stocks") in found
    assert ("modify_type", "stocks") in found
    if engine.dialect.supports_comments:  # SQLite keeps no comments
        assert {("add_table_comment", "stocks"), ("modify_comment", "stocks")} <= found


def test_the_head_is_read_without_alembic_as_alembic_reads_it() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    assert head_revision() == scripts.get_current_head()
    assert known_revisions() == {s.revision for s in scripts.walk_revisions()}
    assert BASELINE_REVISION in known_revisions()


# --- ensure_schema ----------------------------------------------------------------------------


def test_ensure_schema_twice_is_a_no_op_of_one_query(empty_engine: Engine) -> None:
    ensure_schema(empty_engine)
    identities = table_identities(empty_engine)
    statements: list[str] = []

    @sa.event.listens_for(empty_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    ensure_schema(empty_engine)

    assert statements == [f"SELECT version_num FROM {VERSION_TABLE}"]
    assert table_identities(empty_engine) == identities
    with empty_engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all() == [
            (head_revision(),)
        ]


def test_concurrent_ensure_schema_on_a_fresh_database_all_succeed(empty_url: str) -> None:
    # One engine (one connection pool) each, as separate processes have.
    engines = [create_db_engine(empty_url, upgrade=False) for _ in range(4)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        start.wait()
        try:
            ensure_schema(engine)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    assert table_names(engines[0]) >= BASELINE_TABLES | {VERSION_TABLE}
    assert differences(engines[0], head_metadata) == []
    for engine in engines:
        engine.dispose()


def test_a_failing_migration_leaves_the_database_as_it_was(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    head = head_revision()
    broken = f"{int(head) + 1:04d}"
    (location / "versions" / f"{broken}_broken.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
        f"revision = {broken!r}\n"
        f"down_revision = {head!r}\n"
        "def upgrade():\n"
        "    op.create_table('half_done', sa.Column('id', sa.Integer(), primary_key=True))\n"
        "    op.add_column('stocks', sa.Column('half_done', sa.Integer()))\n"
        "    raise RuntimeError('boom')\n"
    )
    monkeypatch.setattr(schema_migrations, "MIGRATIONS_DIR", location)
    assert head_revision() == broken

    with pytest.raises(RuntimeError, match="boom"):
        ensure_schema(engine)

    # One transaction on both: nothing of it stayed, and the lock was let go.
    assert current_revision(engine) == head
    assert "half_done" not in table_names(engine)
    with engine.connect() as conn:
        assert "half_done" not in {c["name"] for c in sa.inspect(conn).get_columns("stocks")}
    monkeypatch.setattr(schema_migrations, "MIGRATIONS_DIR", MIGRATIONS_DIR)
    ensure_schema(engine)


def test_an_unknown_target_revision_is_refused(empty_engine: Engine) -> None:
    with pytest.raises(SchemaMigrationError, match="nope"):
        upgrade(empty_engine, "nope")
    assert table_names(empty_engine) <= {VERSION_TABLE}  # nothing built


def test_a_database_newer_than_the_code_is_refused_not_touched(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(SchemaMigrationError, match=r"9999.*newer version"):
        ensure_schema(engine)
    assert current_revision(engine) == "9999"


# --- writing the next revision --------------------------------------------------------------


def test_new_revision_writes_the_migration_a_schema_change_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, location, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(schema_migrations, "MIGRATIONS_DIR", location)
    changed = sa.MetaData()
    for table in head_metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["stocks"].append_column(sa.Column("currency", sa.String(3), nullable=True))
    sa.Table(
        "splits",
        changed,
        sa.Column("ticker", sa.String(15), primary_key=True),
        sa.Column("ratio", legacy_schema.ExactDecimal(), nullable=False),
        sa.Column("at", legacy_schema.UTCDateTime(), nullable=False),
    )
    previous = head_revision()

    path = new_revision("add stocks currency and splits", target_metadata=changed)

    assert path.parent == location / "versions"
    assert path.name == f"{int(previous) + 1:04d}_add_stocks_currency_and_splits.py"
    text = path.read_text()
    assert schema_migrations._revision_graph(str(location))[path.name[:4]] == (previous,)
    assert "from quote_pipeline.storage.types import" in text
    assert "ExactDecimal()" in text and "UTCDateTime()" in text
    assert head_revision() == path.name[:4]
    # The file runs, and builds exactly the changed schema.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    upgrade(engine)
    assert current_revision(engine) == path.name[:4]
    assert differences(engine, changed) == []
    engine.dispose()


# --- quote-pipeline db ------------------------------------------------------------------------


def test_db_current_then_upgrade_then_current(empty_url: str) -> None:
    db = ["--database-url", empty_url]
    head = head_revision()

    before = cli(*db, "db", "current")
    assert before.returncode == 0, before.stderr
    assert "current:  none (no schema yet" in before.stdout
    assert f"head:     {head}" in before.stdout
    assert "database: " in before.stdout
    assert table_names(create_db_engine(empty_url, upgrade=False)) == set()  # only looked

    upgraded = cli(*db, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"upgraded from revision none to {head}" in upgraded.stdout

    after = cli(*db, "db", "current")
    assert after.returncode == 0, after.stderr
    assert f"current:  {head} (up to date)" in after.stdout

    again = cli(*db, "db", "upgrade")
    assert again.returncode == 0 and f"already at revision {head}" in again.stdout


def test_db_current_names_a_database_made_before_migrations(empty_url: str) -> None:
    legacy_schema.metadata.create_all(create_db_engine(empty_url, upgrade=False))
    shown = cli("--database-url", empty_url, "db", "current")
    assert shown.returncode == 0, shown.stderr
    assert "current:  none (tables made before migrations" in shown.stdout


def test_db_upgrade_to_an_unknown_revision_is_one_line(sqlite_url: str) -> None:
    result = cli("--database-url", sqlite_url, "db", "upgrade", "--revision", "nope")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "nope" in result.stderr


@pytest.mark.parametrize("command", [["db", "current"], ["db", "upgrade"], ["tickers", "list"]])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unreachable_database_is_one_line(
    tmp_path: Path, backend: str, command: list[str]
) -> None:
    if backend == "postgresql":
        url, shown = "postgresql://postgres:s3cret@127.0.0.1:1/nope", "127.0.0.1:1/nope"
    else:
        url, shown = f"sqlite:///{tmp_path}", str(tmp_path)  # a directory, not a file
    result = cli("--database-url", url, *command)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("quote-pipeline: error: database ")
    assert shown in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "url", ["postgresql://me:s3cret@db:notaport/x", "nosuchdb://me:s3cret@db/x"]
)
def test_an_unusable_database_url_is_one_line_without_its_password(url: str) -> None:
    result = cli("--database-url", url, "db", "current")
    assert result.returncode == 2
    assert result.stderr.startswith("quote-pipeline: error: unusable database URL: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
