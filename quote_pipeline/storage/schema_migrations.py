"""The data tables' schema under Alembic: which revision a database is at, and upgrades.

Every engine goes through :func:`ensure_schema` when it is made ("upgrade on first use"):
one small query when the database is at the head; otherwise an upgrade under a lock, so
processes that start together (a schedule tick, a backfill, the CLI) migrate it once. A
database made by ``metadata.create_all`` before migrations existed is adopted at the baseline
revision, never rebuilt.

The revisions live in ``migrations/versions`` inside the package (no alembic.ini). Alembic,
whose import costs ~80 ms, is only loaded when there is something to migrate: the fast path
reads the head from the version files' ``revision``/``down_revision`` literals.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
BASELINE_REVISION = "0001"
# What create_all made before migrations: any of these without a version table is adopted.
BASELINE_TABLES = frozenset(
    {"tickers", "stocks", "quote_snapshots", "daily_prices", "intraday_bars", "api_calls"}
)

# One advisory lock key per project, the same in every process (PostgreSQL scopes it to the
# database, so other databases on the server are not held up).
_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"quote_pipeline.schema_migrations").digest()[:8], "big", signed=True
)


class SchemaMigrationError(RuntimeError):
    """The schema cannot be brought to or read at a revision: an unknown revision, a database
    newer than this code, or revisions that fork."""


# --- revisions this code knows -------------------------------------------------------------


def head_revision() -> str:
    """The newest revision in this code: what :func:`ensure_schema` upgrades to."""
    return _head(str(MIGRATIONS_DIR))


def known_revisions() -> frozenset[str]:
    """Every revision in this code; a database at any other one is newer than the code."""
    return frozenset(_revision_graph(str(MIGRATIONS_DIR)))


@functools.cache
def _head(location: str) -> str:
    graph = _revision_graph(location)
    heads = set(graph) - {down for downs in graph.values() for down in downs}
    if len(heads) != 1:
        raise SchemaMigrationError(
            f"the migrations in {location} have {len(heads)} heads ({', '.join(sorted(heads))})"
            "; exactly one is expected: give the newer revision the other as down_revision"
        )
    return heads.pop()


@functools.cache
def _revision_graph(location: str) -> dict[str, tuple[str, ...]]:
    """Each revision's down revisions, from the version files' literals without importing
    them (nor Alembic); a file that does not spell them as literals is left to Alembic."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted(Path(location, "versions").glob("*.py")):
        if path.name.startswith("__"):
            continue
        ids = _literal_ids(path)
        if ids is None:
            return _alembic_revision_graph(location)
        graph[ids[0]] = ids[1]
    return graph


def _literal_ids(path: Path) -> tuple[str, tuple[str, ...]] | None:
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        return None
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    return None


def _alembic_revision_graph(location: str) -> dict[str, tuple[str, ...]]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config(script_location=location))
    return {
        script.revision: tuple(script._normalized_down_revisions)
        for script in scripts.walk_revisions()
    }


# --- the revision a database is at ---------------------------------------------------------


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None when it has none (empty, or made before migrations)."""
    with engine.connect() as conn:
        return _stored_revision(conn)


def predates_migrations(engine: Engine) -> bool:
    """Whether the database has the baseline's tables but no revision: made by create_all
    before migrations, it is adopted at the baseline on the next upgrade."""
    with engine.connect() as conn:
        return _stored_revision(conn) is None and bool(_baseline_tables_present(conn))


def _stored_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    versions = conn.scalars(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    if len(versions) > 1:
        raise SchemaMigrationError(f"the database is at several revisions: {sorted(versions)}")
    return versions[0] if versions else None


def _baseline_tables_present(conn: Connection) -> frozenset[str]:
    return BASELINE_TABLES & set(sa.inspect(conn).get_table_names())


def _quick_revision(engine: Engine) -> str | None:
    """The stored revision in one query. None when it cannot be read that way (no version
    table yet): the full path that follows looks properly, under the lock."""
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        except sa.exc.DBAPIError:
            return None  # leaving the block rolls back PostgreSQL's failed transaction


# --- upgrades ------------------------------------------------------------------------------


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the head unless it is there: called on every engine creation,
    so when up to date it costs one tiny query. An unreachable database raises SQLAlchemy's
    ``OperationalError``; one newer than this code, :class:`SchemaMigrationError`."""
    if _quick_revision(engine) == head_revision():
        return
    upgrade(engine)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the head), one process at a time.

    A database without a revision but with the baseline's tables (made by create_all before
    migrations) is stamped at the baseline first, its tables and rows kept as they are.
    Raises :class:`SchemaMigrationError` for an unknown target revision, or a database at a
    revision this code does not know (a newer deployment migrated it). A target the database
    has already passed is a no-op: downgrades are not offered.
    """
    from alembic import command
    from alembic.util import CommandError

    with _migration_lock(engine) as conn:
        # Re-read under the lock: another process may have migrated while this one waited.
        current = _stored_revision(conn)
        head = head_revision()
        if revision in ("head", "heads") and current == head:
            return
        if current is not None and current not in known_revisions():
            raise SchemaMigrationError(
                f"the database is at revision {current}, which this code does not know (its "
                f"head is {head}): it was migrated by a newer version of quote_pipeline"
            )
        config = _config(connection=conn)
        try:
            if current is None:
                present = _baseline_tables_present(conn)
                if present == BASELINE_TABLES:
                    log.info("adopting tables made before migrations at %s", BASELINE_REVISION)
                    _hand_over(conn)
                    command.stamp(config, BASELINE_REVISION)
                elif present:
                    # Made by an older create_all that lacked later tables: the baseline
                    # creates only the missing ones.
                    log.info("adopting %s; the baseline adds the rest", sorted(present))
            log.info("upgrading the schema from %s to %s", current, revision)
            _hand_over(conn)
            command.upgrade(config, revision)
        except CommandError as exc:
            raise SchemaMigrationError(str(exc)) from exc


def _hand_over(conn: Connection) -> None:
    """On PostgreSQL, end our read transaction so that Alembic runs its own (and can commit
    inside a migration with ``autocommit_block``). On SQLite the whole migration stays in
    the exclusive transaction the lock opened, which Alembic then leaves to us."""
    if conn.dialect.name != "sqlite":
        conn.commit()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection on which this process alone migrates the database until the block ends."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            with _postgres_advisory_lock(conn):
                yield conn
        elif conn.dialect.name == "sqlite":
            with _sqlite_exclusive_transaction(conn):
                yield conn
        else:
            raise SchemaMigrationError(
                f"no migration lock for the {conn.dialect.name} dialect (use PostgreSQL or SQLite)"
            )


@contextmanager
def _postgres_advisory_lock(conn: Connection) -> Iterator[None]:
    # Session-level, not transaction-level: it must outlive the transactions Alembic commits.
    conn.execute(sa.select(sa.func.pg_advisory_lock(_LOCK_KEY)))
    conn.commit()
    try:
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(sa.select(sa.func.pg_advisory_unlock(_LOCK_KEY)))
            conn.commit()
        except sa.exc.DBAPIError:
            # A broken session: discarding it ends the session, and its lock with it.
            conn.invalidate()


@contextmanager
def _sqlite_exclusive_transaction(conn: Connection) -> Iterator[None]:
    # pysqlite begins transactions lazily and never before DDL. With the driver in autocommit
    # mode our own BEGIN EXCLUSIVE holds every other connection off (they wait, busy
    # timeout) and makes the whole migration one transaction: SQLite's DDL is transactional.
    conn.execution_options(isolation_level="AUTOCOMMIT")  # reset when the connection returns
    conn.exec_driver_sql("BEGIN EXCLUSIVE")
    try:
        yield
    except BaseException:
        if conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")
    conn.commit()  # the Connection's own (driver-level no-op) transaction


def _config(*, script_location: str | Path | None = None, **attributes: Any) -> Config:
    """Alembic's configuration, made in code. ``attributes`` reach env.py (``connection``,
    and ``target_metadata`` to compare against another than schema.py's)."""
    from alembic.config import Config

    config = Config()
    location = str(script_location or MIGRATIONS_DIR)
    config.set_main_option("script_location", location.replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes.update(attributes)
    return config


# --- writing a new revision ----------------------------------------------------------------


def new_revision(
    message: str,
    *,
    url: str = "sqlite://",
    autogenerate: bool = True,
    target_metadata: sa.MetaData | None = None,
) -> Path:
    """Write the next revision (``NNNN_<slug>.py`` in migrations/versions) and return its path.

    With ``autogenerate``, Alembic compares ``target_metadata`` (default: schema.py's) with
    the scratch database ``url``, first upgraded to the head, and writes the difference in
    batch form (which PostgreSQL runs as plain ALTERs). The default, an in-memory SQLite
    database, shows no comment changes: pass a scratch PostgreSQL database for those. Read
    the file before committing: data moves (backfills, renames) are for you to write.
    """
    from alembic import command

    head = head_revision()
    rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    scratch = sa.create_engine(url)  # in memory: one connection, kept while the engine lives
    try:
        upgrade(scratch)
        with scratch.connect() as conn:
            attributes: dict[str, Any] = {"connection": conn}
            if target_metadata is not None:
                attributes["target_metadata"] = target_metadata
            written = command.revision(
                _config(**attributes), message=message, autogenerate=autogenerate, rev_id=rev_id
            )
    finally:
        scratch.dispose()
    _head.cache_clear()
    _revision_graph.cache_clear()
    assert written is not None and not isinstance(written, list)
    path = Path(written.path)
    _tidy(path)
    return path


def _tidy(path: Path) -> None:
    """Format the generated file as the project does, when ruff is installed."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff:
        for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
            subprocess.run([ruff, *args, str(path)], capture_output=True, check=False)
