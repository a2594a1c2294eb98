"""Resources: the seam between Dagster and the plain-Python API client and storage."""

import atexit
import functools
import hashlib
import os
import threading
from typing import Literal

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine

from quote_pipeline.fmp import DEFAULT_BASE_URL, ClientSettings, FMPClient
from quote_pipeline.fmp.pacing import shared_pacer
from quote_pipeline.storage import create_db_engine, display_url, resolve_database_url
from quote_pipeline.storage.call_ledger import SqlCallLedger

API_KEY_ENV = "FMP_API_KEY"
BASE_URL_ENV = "FMP_BASE_URL"
CALLS_PER_MINUTE_ENV = "FMP_CALLS_PER_MINUTE"


class DatabaseResource(dg.ConfigurableResource):
    """The project's database (SQLite by default, PostgreSQL in production)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: QUOTE_PIPELINE_DATABASE_URL, else a SQLite file "
        "in ./data. Prefer the variable: a URL here is visible in the UI.",
    )

    def get_engine(self) -> Engine:
        """The engine for this database, created (with its tables) once per process."""
        return _engine_for(resolve_database_url(self.url))

    def describe(self) -> str:
        """The URL with its password masked."""
        return display_url(resolve_database_url(self.url))


@functools.cache
def _engine_for(url: str) -> Engine:
    return create_db_engine(url)


class FMPResource(dg.ConfigurableResource):
    """Financial Modeling Prep (or any API that speaks its `/stable` dialect).

    The key comes from an `EnvVar`, so the UI shows the variable's name, never its value.
    """

    api_key: str = Field(description=f"FMP API key; set it with the {API_KEY_ENV} variable.")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Scheme and host of the API.")
    endpoint_mode: Literal["auto", "single"] = Field(
        default="auto",
        description="auto: use the premium batch endpoint when the plan allows it (one probe "
        "request per run), else single-symbol requests; single: never try the batch endpoint.",
    )
    max_concurrency: int = Field(default=64, ge=1, le=256, description="Requests in flight.")
    symbols_per_request: int = Field(default=100, ge=1, le=1000, description="Batch size.")
    calls_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Client-side cap on calls per rolling minute (the plan's limit); "
        "unset: no cap.",
    )
    connect_timeout: float = Field(default=3.05, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=4, ge=1, description="Tries per request for 5xx/429/resets.")
    backoff_initial: float = Field(default=0.5, ge=0, description="First retry wait, seconds.")
    rate_limit_pause: float = Field(
        default=2.0, ge=0, description="Seconds every request waits after a 429."
    )
    quota_exhausted_after: float = Field(
        default=65.0,
        gt=0,
        description="Seconds of unbroken 429s (at least 10 in a row) after which the quota "
        "counts as exhausted and the run stops asking.",
    )
    database: DatabaseResource | None = Field(
        default=None,
        description="With calls_per_minute: where calls are counted (table api_calls), so "
        "every run and process on this database shares the plan's cap. Unset: each process "
        "counts its own calls.",
    )

    def get_client(self) -> FMPClient:
        """The process's client for this configuration, shared by every step that runs here.

        Steps of a run execute one after another in one process; sharing the client keeps
        its threads and pooled connections warm between them. Do not close it: it is
        closed when the process exits.
        """
        settings = ClientSettings(
            base_url=self.base_url,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_concurrency=self.max_concurrency,
            symbols_per_request=self.symbols_per_request,
            calls_per_minute=self.calls_per_minute,
            attempts=self.attempts,
            backoff_initial=self.backoff_initial,
            rate_limit_pause=self.rate_limit_pause,
            quota_exhausted_after=self.quota_exhausted_after,
        )
        # The cap is the account's: every client of this key in the process shares a pacer.
        account = hashlib.sha256(f"{self.base_url}|{self.api_key}".encode()).hexdigest()
        ledger_url = resolve_database_url(self.database.url) if self.database else None
        return _shared_client(account, self.api_key, settings, ledger_url)


_clients: dict[tuple[str, ClientSettings, str | None], FMPClient] = {}
_clients_lock = threading.Lock()


def _shared_client(
    account: str, api_key: str, settings: ClientSettings, ledger_url: str | None
) -> FMPClient:
    with _clients_lock:
        key = (account, settings, ledger_url)
        if key not in _clients:
            pacer = shared_pacer(
                account,
                settings.calls_per_minute,
                ledger_scope=ledger_url,
                make_ledger=(
                    (lambda: SqlCallLedger(_engine_for(ledger_url), account))
                    if ledger_url
                    else None
                ),
            )
            _clients[key] = FMPClient(api_key, settings, pacer=pacer)
        return _clients[key]


@atexit.register
def _close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def fmp_resource_from_env(database: DatabaseResource | None = None) -> FMPResource:
    """The FMP resource as the deployed code location configures it; with ``database``,
    the plan's cap is counted there, across processes."""
    calls_per_minute = os.environ.get(CALLS_PER_MINUTE_ENV)
    return FMPResource(
        api_key=dg.EnvVar(API_KEY_ENV),
        base_url=os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL,
        calls_per_minute=int(calls_per_minute) if calls_per_minute else None,
        database=database,
    )
