"""A PostgreSQL server for the test session: the running one, a started one, or a throwaway.

Order of preference:
1. ``$QUOTE_PIPELINE_TEST_POSTGRES_URL`` (a server URL whose database may be dropped/created in);
2. the local server on 127.0.0.1:5432 as ``postgres`` (trust auth);
3. the installed cluster, started with ``pg_ctlcluster`` when it is merely stopped;
4. a throwaway cluster made with ``initdb`` in a temporary directory on a free port.
When none can be had, the session stops with a message that says what was tried.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

SERVER_URL_ENV = "QUOTE_PIPELINE_TEST_POSTGRES_URL"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be reached, started or created."""


@dataclass
class PostgresServer:
    """A reachable server; ``url`` points at its maintenance database."""

    url: str
    how: str
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for step in reversed(self._cleanup):
            step()
        self._cleanup.clear()


def _reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when a connection works, else the reason it failed."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": int(max(timeout, 1))})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        return None
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


def _wait_reachable(url: str, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    reason = _reachable(url)
    while reason and time.monotonic() < deadline:
        time.sleep(0.5)
        reason = _reachable(url)
    return reason


def _start_installed_cluster() -> str:
    """Start the Debian-style cluster if one is installed but down; say what happened."""
    if not shutil.which("pg_lsclusters") or not shutil.which("pg_ctlcluster"):
        return "no pg_ctlcluster on PATH"
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "5432" and parts[3] != "online":
            started = subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", parts[0], parts[1], "start"],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            return f"pg_ctlcluster {parts[0]} {parts[1]} start: exit {started.returncode}"
    return "no stopped cluster on port 5432"


def _postgres_bindir() -> Path | None:
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(found).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _throwaway_cluster() -> PostgresServer:
    bindir = _postgres_bindir()
    if bindir is None:
        raise PostgresUnavailable("no initdb found (is PostgreSQL installed?)")
    workdir = Path(tempfile.mkdtemp(prefix="qp-pg-"))
    datadir, port = workdir / "data", _free_port()
    # initdb refuses to run as root: run the server as the postgres user when we are root.
    as_user: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            raise PostgresUnavailable("running as root and no runuser to drop privileges")
        shutil.chown(workdir, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-500:]}")

    run(str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(workdir / "server.log"), "-w",
        "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start",
    )  # fmt: skip

    def stop() -> None:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)

    server = PostgresServer(
        f"postgresql://postgres@127.0.0.1:{port}/postgres", "throwaway cluster", [stop]
    )
    if reason := _wait_reachable(server.url, 30):
        server.stop()
        raise PostgresUnavailable(f"throwaway cluster did not accept connections: {reason}")
    return server


def acquire_postgres() -> PostgresServer:
    """A reachable PostgreSQL server, or :class:`PostgresUnavailable` saying what was tried."""
    tried: list[str] = []
    explicit = os.environ.get(SERVER_URL_ENV)
    if explicit:
        if reason := _reachable(explicit):
            raise PostgresUnavailable(f"{SERVER_URL_ENV} is set but unreachable: {reason}")
        return PostgresServer(explicit, SERVER_URL_ENV)
    reason = _reachable(DEFAULT_SERVER_URL)
    if reason is None:
        return PostgresServer(DEFAULT_SERVER_URL, "local server")
    tried.append(f"127.0.0.1:5432: {reason}")
    started = _start_installed_cluster()
    tried.append(started)
    # Any start attempt, even a failed one: with two test workers, the other one may be
    # starting the same cluster at this moment ("already running").
    if "start: exit" in started and _wait_reachable(DEFAULT_SERVER_URL, 20) is None:
        return PostgresServer(DEFAULT_SERVER_URL, "installed cluster, started for the tests")
    try:
        return _throwaway_cluster()
    except PostgresUnavailable as exc:
        tried.append(str(exc))
    raise PostgresUnavailable(
        "the tests need PostgreSQL and none could be had. Tried: "
        + "; ".join(tried)
        + f". Install PostgreSQL or set {SERVER_URL_ENV}=postgresql://user@host:port/postgres."
    )


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server; return its URL (bare ``postgresql://``)."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
