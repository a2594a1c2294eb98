"""Resources: the seam between Dagster and the plain-Python client, fetch engine and storage.

Each resource builds what it owns when a run (or a sensor or schedule evaluation) starts —
`setup_for_execution` — and closes it when that ends: one database engine, one HTTP client
with its threads and pooled connections, one fetch engine, shared by every step of the run.
Nothing is cached per process.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import dagster as dg
from pydantic import Field, PrivateAttr
from sqlalchemy.engine import Engine

from quote_pipeline.defs.code_version import code_version
from quote_pipeline.defs.executors import build_executor
from quote_pipeline.defs.settings import (
    API_KEY_ENV,
    BASE_URL_ENV,
    CALLS_PER_MINUTE_ENV,
    HISTORY_PROVIDERS_ENV,
    MASSIVE_API_KEY_ENV,
    MASSIVE_BASE_URL_ENV,
    MASSIVE_CALLS_PER_MINUTE_ENV,
    QUOTE_PROVIDERS_ENV,
    DeploymentSettings,
    calls_per_minute_from_env,
    provider_order,
)
from quote_pipeline.fetch_engine import FetchEngine, RetryBudget
from quote_pipeline.fmp import DEFAULT_BASE_URL, ClientSettings, FMPClient
from quote_pipeline.fmp.pacing import CallPacer
from quote_pipeline.http_client import HttpClientSettings, MissingAPIKeyError
from quote_pipeline.massive.client import DEFAULT_BASE_URL as MASSIVE_DEFAULT_BASE_URL
from quote_pipeline.massive.client import MassiveClient, MassiveSettings
from quote_pipeline.providers.base import MarketDataProvider
from quote_pipeline.providers.fmp import NAME as FMP_NAME
from quote_pipeline.providers.fmp import FMPProvider
from quote_pipeline.providers.massive import NAME as MASSIVE_NAME
from quote_pipeline.providers.massive import MassiveProvider
from quote_pipeline.storage import create_db_engine, display_url, resolve_database_url
from quote_pipeline.storage.call_ledger import SqlCallLedger
from quote_pipeline.storage.fetch_state import (
    RetryBackoff,
    SqlQuotaMemory,
    account_name,
)


class DatabaseResource(dg.ConfigurableResource):
    """The project's database (SQLite by default, PostgreSQL in production)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: QUOTE_PIPELINE_DATABASE_URL, else a SQLite file "
        "in ./data. Prefer the variable: a URL here is visible in the UI.",
    )
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = create_db_engine(resolve_database_url(self.url))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def get_engine(self) -> Engine:
        """The engine of this run (with the schema migrated to the latest revision)."""
        if self._engine is None:  # used outside Dagster's lifecycle (a script, a test)
            self._engine = create_db_engine(resolve_database_url(self.url))
        return self._engine

    def describe(self) -> str:
        """The URL with its password masked."""
        return display_url(resolve_database_url(self.url))


class ProviderResource(dg.ConfigurableResource):
    """What every market-data provider's resource has: its key, host and cap (read when a
    run starts), the fetch engine's retry budget, and the database where its calls are
    counted and an exhausted quota remembered. A subclass names its client and variables."""

    # Read when a run starts, like the database URL: a launchpad edit of any other field
    # keeps the deployment's API host and cap.
    base_url: str | None = Field(  # type: ignore[assignment]
        default=None,
        description="Scheme and host of the API. Unset: the provider's *_BASE_URL variable, "
        "else the vendor's own host.",
    )
    calls_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Client-side cap on calls per rolling minute (the plan's limit). Unset: "
        "the provider's *_CALLS_PER_MINUTE variable, else no cap.",
    )
    extra_passes: int = Field(
        default=1,
        ge=0,
        description="In-run retry budget: passes over the symbols that failed transiently "
        "(5xx, timeout, 429) after the first pass. Good rows never wait for more than this.",
    )
    pass_delay_seconds: float = Field(
        default=30.0, ge=0, description="Pause before each extra pass."
    )
    quota_hold_minutes: float = Field(
        default=30.0,
        gt=0,
        description="After the quota ran out, no run makes a request for this long (the "
        "schedule skips, a manual run fails at once or uses the next provider); then one "
        "probe asks again.",
    )
    database: DatabaseResource | None = Field(
        default=None,
        description="Where calls are counted (api_calls, with calls_per_minute) and an "
        "exhausted quota remembered (api_quota_state), so that every run and process on this "
        "database shares them. Unset: each run counts and remembers for itself.",
    )

    # What a subclass says about its vendor.
    provider_name: ClassVar[str]
    settings_class: ClassVar[type[HttpClientSettings]]
    default_base_url: ClassVar[str]
    base_url_env: ClassVar[str]
    calls_per_minute_env: ClassVar[str]

    _client: Any = PrivateAttr(default=None)
    _engine: FetchEngine | None = PrivateAttr(default=None)
    _quota_memory: SqlQuotaMemory | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Opened on first use: a provider the run's configuration does not ask (or one
        # without a key) costs nothing and fails nothing.
        pass

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._engine = self._quota_memory = None

    def _make_client(self, settings: Any, pacer: CallPacer) -> Any:
        raise NotImplementedError

    def _open(self) -> None:
        database = self.database.get_engine() if self.database is not None else None
        if database is not None:
            self._quota_memory = SqlQuotaMemory(
                database, self.account, hold=timedelta(minutes=self.quota_hold_minutes)
            )
        settings = self.client_settings()
        pacer = CallPacer(
            settings.calls_per_minute,
            ledger=(
                SqlCallLedger(database, self.account)
                if database is not None and settings.calls_per_minute
                else None
            ),
            quota_memory=self._quota_memory,
        )
        self._client = self._make_client(settings, pacer)
        self._engine = FetchEngine(
            self._client,
            RetryBudget(extra_passes=self.extra_passes, pass_delay_seconds=self.pass_delay_seconds),
        )

    def client_settings(self) -> Any:
        """The client's settings: these fields, with the API host and cap resolved."""
        fields = {name: getattr(self, name) for name in self.settings_class.model_fields}
        fields["base_url"] = (
            self.base_url or os.environ.get(self.base_url_env) or self.default_base_url
        )
        if self.calls_per_minute is None:
            fields["calls_per_minute"] = calls_per_minute_from_env(name=self.calls_per_minute_env)
        return self.settings_class(**fields)

    @property
    def account(self) -> str:
        """The plan's account, as a hash of the base URL and key (never the key itself),
        named after its provider (see :func:`account_name`)."""
        key = getattr(self, "api_key", None) or ""
        return account_name(self.provider_name, self.client_settings().base_url, key)

    @property
    def client(self) -> Any:
        """This run's client, shared by its steps (threads and connections stay warm).
        Without a key, the run fails in one line."""
        if self._client is None:
            self._open_or_fail()
        return self._client

    def _open_or_fail(self) -> None:
        try:
            self._open()
        except MissingAPIKeyError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None

    @property
    def engine(self) -> FetchEngine:
        """This run's fetch engine over :attr:`client`, with the configured retry budget."""
        if self._engine is None:
            self._open_or_fail()
        assert self._engine is not None
        return self._engine

    def quota_held(self) -> str | None:
        """Why no request may be made now (this account's exhausted quota, remembered in
        ``database``), or None."""
        if self._quota_memory is None and self.database is not None:
            self._open_or_fail()
        if self._quota_memory is not None and (hold := self._quota_memory.current_hold()):
            return hold.message()
        return None

    def refuse_if_quota_held(self) -> None:
        """Fail the run at once, before any request, while this account's exhausted quota is
        remembered (in ``database``; without one, each run finds out for itself)."""
        if held := self.quota_held():
            raise dg.Failure(held, allow_retries=False)

    @property
    def provider(self) -> MarketDataProvider:
        """This run's client as a provider the fallback chain can ask."""
        raise NotImplementedError


class FMPResource(ProviderResource, ClientSettings):
    """Financial Modeling Prep (or any API that speaks its `/stable` dialect): the HTTP client,
    the fetch engine over it, and what happens to symbols that keep failing.

    The key comes from an `EnvVar`, so the UI shows the variable's name, never its value.
    Every client setting (timeouts, concurrency, tries) is a field here, with its default.
    """

    provider_name: ClassVar[str] = FMP_NAME
    settings_class: ClassVar[type[HttpClientSettings]] = ClientSettings
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    base_url_env: ClassVar[str] = BASE_URL_ENV
    calls_per_minute_env: ClassVar[str] = CALLS_PER_MINUTE_ENV

    # Required, not defaulted: Dagster keeps a required field's code value (the EnvVar)
    # when a run's config sets only some of the other fields; an optional one it drops.
    api_key: str = Field(
        description="FMP API key; set it with the FMP_API_KEY variable. Empty: FMP refuses "
        "to run in one line (and the next provider, if any, is used).",
    )
    endpoint_mode: Literal["auto", "single"] = Field(
        default="auto",
        description="auto: use the premium batch endpoint when the plan allows it (one probe "
        "request per run), else single-symbol requests; single: never try the batch endpoint.",
    )
    retry_first_delay_minutes: float = Field(
        default=1.0,
        gt=0,
        description="A symbol still failing after the budget is asked again alone, by the "
        "retry sensor, this long after the run; the delay doubles with every failing run.",
    )
    retry_max_delay_minutes: float = Field(
        default=30.0, gt=0, description="Longest delay between two retries of a symbol."
    )
    give_up_after_hours: float = Field(
        default=6.0,
        gt=0,
        description="Stop asking a symbol again this long after it first failed; it stays "
        "recorded (symbol_retries) and reported by the coverage check.",
    )

    def _make_client(self, settings: Any, pacer: CallPacer) -> FMPClient:
        return FMPClient(self.api_key, settings, pacer=pacer)

    @property
    def client(self) -> FMPClient:
        """This run's client, shared by its steps (threads and connections stay warm)."""
        return super().client  # type: ignore[no-any-return]

    @property
    def provider(self) -> FMPProvider:
        return FMPProvider(
            self.client, self.engine, held=self.quota_held, endpoint_mode=self.endpoint_mode
        )

    def retry_backoff(self) -> RetryBackoff:
        return RetryBackoff(
            first_delay=timedelta(minutes=self.retry_first_delay_minutes),
            max_delay=timedelta(minutes=self.retry_max_delay_minutes),
            give_up_after=timedelta(hours=self.give_up_after_hours),
        )


class MassiveResource(ProviderResource, MassiveSettings):
    """Massive (formerly Polygon.io): snapshots of many tickers' quotes per request, and every
    US stock's daily bar for a session in one request. Its key travels in the
    `Authorization: Bearer` header, never in a URL; set it with MASSIVE_API_KEY (an
    `EnvVar`: the UI shows the variable's name). Used only when a run's provider order
    names it."""

    provider_name: ClassVar[str] = MASSIVE_NAME
    settings_class: ClassVar[type[HttpClientSettings]] = MassiveSettings
    default_base_url: ClassVar[str] = MASSIVE_DEFAULT_BASE_URL
    base_url_env: ClassVar[str] = MASSIVE_BASE_URL_ENV
    calls_per_minute_env: ClassVar[str] = MASSIVE_CALLS_PER_MINUTE_ENV

    api_key: str = Field(
        description="Massive API key; set it with the MASSIVE_API_KEY variable. Empty: the "
        "provider refuses to run in one line, and the next one is used.",
    )

    def _make_client(self, settings: Any, pacer: CallPacer) -> MassiveClient:
        return MassiveClient(self.api_key, settings, pacer=pacer)

    @property
    def provider(self) -> MassiveProvider:
        return MassiveProvider(self.client, self.engine, held=self.quota_held)


class ProviderChoice(dg.ConfigurableResource):
    """Which providers a run asks, primary first. What the primary cannot serve (the whole
    run when its key, quota or plan refuses; single symbols otherwise) is asked of the next."""

    quote_providers: list[str] | None = Field(
        default=None,
        description="Quote providers in order, e.g. [fmp, massive]. Unset: the "
        f"{QUOTE_PROVIDERS_ENV} variable (comma-separated), else [fmp].",
    )
    history_providers: list[str] | None = Field(
        default=None,
        description="Daily history providers in order, e.g. [massive, fmp] (Massive's "
        "grouped daily costs one request per session for every ticker). Unset: the "
        f"{HISTORY_PROVIDERS_ENV} variable, else [fmp].",
    )

    def quote_order(self) -> list[str]:
        return provider_order(self.quote_providers, QUOTE_PROVIDERS_ENV, PROVIDER_NAMES)

    def history_order(self) -> list[str]:
        return provider_order(self.history_providers, HISTORY_PROVIDERS_ENV, PROVIDER_NAMES)


PROVIDER_NAMES = (FMP_NAME, MASSIVE_NAME)


class RunValueStore(dg.IOManager):
    """Values handed from one step to the next: kept in memory for the steps of this run
    process, and pickled under the instance's storage directory so that a step retried or
    re-executed in another process (re-execution from failure) still finds its inputs.

    It writes no log line of its own: the default filesystem IO manager logged "Writing file
    at" and "Loading file from" for every output and input (a quarter of a refresh's events)
    about values that live a few seconds."""

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = base_dir
        self._values: dict[Path, Any] = {}

    def _path(self, context: dg.InputContext | dg.OutputContext) -> Path:
        if context.has_asset_key:
            # An asset's latest value, wherever it was made (a later run may load it).
            return self._base_dir.joinpath(*context.get_asset_identifier())
        # An op's output of one run (step, output, mapping key).
        return self._base_dir.joinpath(*context.get_identifier())

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: a killed step never leaves half a pickle to load.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            try:
                pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                handle.close()
                os.unlink(handle.name)
                raise
        os.replace(handle.name, path)
        self._values[path] = obj

    def load_input(self, context: dg.InputContext) -> Any:
        path = self._path(context)
        if path in self._values:
            return self._values[path]
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)
        except FileNotFoundError:
            raise dg.Failure(
                f"No stored value for input {context.name!r} ({path.name}): materialize "
                "its upstream asset, or re-execute the whole run.",
                allow_retries=False,
            ) from None


class RunValueStoreFactory(dg.ConfigurableIOManagerFactory):
    """The IO manager of every step output (see :class:`RunValueStore`)."""

    base_dir: str | None = Field(
        default=None,
        description="Where values are pickled. Unset: the instance's storage directory.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> RunValueStore:
        base = self.base_dir or context.instance.storage_directory()  # type: ignore[union-attr]
        return RunValueStore(Path(base))


def _key_from(variable: str) -> Any:
    """``EnvVar(variable)`` where the deployment sets it; empty (the provider says in one line
    that it has no key) where it does not."""
    return dg.EnvVar(variable) if os.environ.get(variable, "").strip() else ""


@dg.definitions
def shared_definitions() -> dg.Definitions:
    """The resources every domain uses, configured for this deployment, and the executor.

    The FMP plan's cap is counted, and an exhausted quota remembered, in the data database,
    shared by every run and process. Steps run in process by default: a mapped step costs
    ~15 ms there and ~1 s as a subprocess, and the concurrency that matters is the HTTP inside
    each step; QUOTE_PIPELINE_EXECUTOR=celery (or the launchpad) sends them to Celery workers
    instead (defs/executors.py).
    """
    database = DatabaseResource()
    return dg.Definitions(
        resources={
            "database": database,
            # FMP's key is required, as it always was: a run without FMP_API_KEY is refused
            # at launch, naming the variable. An unset EnvVar fails every run that names the
            # resource, used or not, so Massive's key is an EnvVar only where the deployment
            # (the code location's environment) sets it; its value is read at run time.
            "fmp": FMPResource(api_key=dg.EnvVar(API_KEY_ENV), database=database),
            "massive": MassiveResource(api_key=_key_from(MASSIVE_API_KEY_ENV), database=database),
            "providers": ProviderChoice(),
            "io_manager": RunValueStoreFactory(),
        },
        executor=build_executor(DeploymentSettings.from_env()),
        # The console shows INFO and above (a run's story: batches, writes, failures); every
        # event, DEBUG included, is still in the instance's event log and the UI. Formatting
        # each step's DEBUG events for a terminal was a tenth of a CLI run's CPU.
        loggers={"console": dg.colored_console_logger.configured({"log_level": "INFO"})},
        metadata={"code_version": code_version()},
    )
