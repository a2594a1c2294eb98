"""A second provider end to end: Massive alone, FMP alone, falling back from one to the other
for the whole run and for single symbols, provenance, grouped-daily backfills, keys kept
secret and the consistency check — real runs, a real Dagster instance, the sandbox speaking
both dialects, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from quote_pipeline.definitions import build_definitions
from quote_pipeline.defs.resources import FMPResource, MassiveResource
from quote_pipeline.sandbox import FaultConfig, SandboxServer
from quote_pipeline.sandbox.market import simulated_quote
from quote_pipeline.storage import add_tickers, create_db_engine, read_stocks
from quote_pipeline.storage import schema as tables
from quote_pipeline.storage.fetch_state import pending_symbols
from quote_pipeline_tests.conftest import MASSIVE_SANDBOX_KEY, SANDBOX_KEY, SandboxFactory
from quote_pipeline_tests.helpers import materialization_metadata, pipeline_definitions, run_refresh
from quote_pipeline_tests.history.support import metadata_by_partition, run_daily

TICKERS = ("AAPL", "MSFT", "KO", "JPM", "XOM", "NVDA", "PEP", "WMT", "T", "IBM", "CSCO", "ORCL")
# Past sessions of a quiet stretch (no holiday): 2026-10-05 … 2026-10-09.
FIRST, LAST = "2026-10-05", "2026-10-09"
SESSIONS = 5
CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens: a provider that is down


def provider_definitions(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxServer,
    database_url: str,
    tickers: Sequence[str],
    **env: str,
) -> dg.Definitions:
    """The real definitions, both providers at the sandbox (configured by environment, as in
    production), retrying quickly and without waiting between passes."""
    env = {"MASSIVE_BASE_URL": sandbox.url, "MASSIVE_API_KEY": MASSIVE_SANDBOX_KEY, **env}
    pipeline_definitions(monkeypatch, sandbox, database_url, tickers, **env)
    quick: dict[str, Any] = {"backoff_initial": 0.01, "pass_delay_seconds": 0.0, "read_timeout": 5}
    return build_definitions(
        resources={
            "fmp": FMPResource(api_key=dg.EnvVar("FMP_API_KEY"), **quick),
            "massive": MassiveResource(api_key=dg.EnvVar("MASSIVE_API_KEY"), **quick),
        }
    )


def massive_sandbox(start_sandbox: SandboxFactory, **config: Any) -> SandboxServer:
    config.setdefault("market_universe", TICKERS)
    config.setdefault("premium", True)
    return start_sandbox(**config)


def quote_sources(database_url: str) -> dict[str, str]:
    return {row.ticker: row.source for row in read_stocks(create_db_engine(database_url))}


def requests_by_dialect(sandbox: SandboxServer) -> Counter[str]:
    return Counter(
        "massive" if entry["path"].startswith("/v2/") else "fmp"
        for entry in sandbox.stats()["requests"]
    )


# --- each provider alone ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fmp", "massive"])
def test_each_provider_alone_refreshes_every_ticker_with_its_name_on_the_rows(
    provider: str,
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One provider configured: every ticker's row says so, at the sandbox's exact price
    (the two dialects quote the same price for the same symbol and moment), and the
    other provider is never called."""
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(
        monkeypatch, sandbox, database_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS=provider
    )
    result = run_refresh(
        defs,
        dagster_instance,
    )
    assert result.success
    engine = create_db_engine(database_url)
    stored = {row.ticker: row for row in read_stocks(engine)}
    assert set(stored) == set(TICKERS)
    generation = sandbox.stats()["generation"]
    for ticker, row in stored.items():
        assert row.source == provider
        assert row.price == simulated_quote(ticker, generation=generation)["price"]
    with engine.connect() as conn:
        snapshot_sources = conn.execute(
            sa.select(tables.quote_snapshots.c.source).distinct()
        ).scalars()
        assert set(snapshot_sources) == {provider}
    assert set(requests_by_dialect(sandbox)) == {provider}
    metadata = materialization_metadata(result, "stocks")
    assert metadata[f"quotes_from_{provider}"] == len(TICKERS)
    assert metadata["stored_rows_by_source"] == f"{provider}: {len(TICKERS)}"


@pytest.mark.parametrize("provider", ["fmp", "massive"])
def test_each_provider_alone_backfills_daily_prices_as_traded(
    provider: str,
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same as-traded bars, to the digit, whichever provider served them; each row and
    each session's materialization names the provider."""
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(
        monkeypatch, sandbox, database_url, TICKERS, QUOTE_PIPELINE_HISTORY_PROVIDERS=provider
    )
    result = run_daily(defs, dagster_instance, FIRST, LAST)
    assert result.success
    rows = stored_daily(database_url)
    assert len(rows) == len(TICKERS) * SESSIONS
    assert {r["source"] for r in rows} == {provider}
    for partition in metadata_by_partition(result).values():
        assert partition[f"rows_from_{provider}"] == len(TICKERS)
    assert set(requests_by_dialect(sandbox)) == {provider}


def stored_daily(database_url: str) -> list[dict[str, Any]]:
    engine = create_db_engine(database_url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(tables.daily_prices).order_by(
                tables.daily_prices.c.ticker, tables.daily_prices.c.date
            )
        )
        return [dict(row._mapping) for row in found]


def test_both_providers_serve_the_same_bars_to_the_digit(
    sqlite_url: str,
    tmp_path: Any,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Massive's grouped daily (adjusted=false) and FMP's non-split-adjusted history give
    the same stored prices and volumes: choosing a provider never changes the data's scale."""
    sandbox = massive_sandbox(start_sandbox, splits=(("AAPL", date(2026, 10, 7), 4, 1),))
    by_provider: dict[str, list[tuple[Any, ...]]] = {}
    for provider in ("fmp", "massive"):
        url = f"sqlite:///{tmp_path / f'{provider}.db'}"
        defs = provider_definitions(
            monkeypatch, sandbox, url, TICKERS, QUOTE_PIPELINE_HISTORY_PROVIDERS=provider
        )
        assert run_daily(defs, dagster_instance, FIRST, LAST).success
        by_provider[provider] = [
            (r["ticker"], r["date"], r["open"], r["high"], r["low"], r["close"], r["volume"])
            for r in stored_daily(url)
        ]
    assert by_provider["fmp"] == by_provider["massive"]
    aapl = [row for row in by_provider["massive"] if row[0] == "AAPL"]
    # As traded: the split shows as a ~4x drop on its ex-date, not a re-scaled past.
    assert aapl[1][5] / aapl[2][5] > Decimal(3)


# --- falling back ----------------------------------------------------------------------------


def test_a_primary_that_is_down_hands_the_whole_run_to_the_next_and_says_so(
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(
        monkeypatch, sandbox, database_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive"
    )
    monkeypatch.setenv("FMP_BASE_URL", CLOSED_PORT_URL)
    result = run_refresh(
        defs,
        dagster_instance,
    )
    assert result.success
    assert set(quote_sources(database_url).values()) == {"massive"}
    assert len(quote_sources(database_url)) == len(TICKERS)
    warnings = [
        e.message
        for e in result.all_events
        if e.event_type_value == "ENGINE_EVENT" or e.is_step_event
    ]
    logs = " ".join(str(e.message) for e in dagster_instance.all_logs(result.run_id) if e.message)
    assert "fmp cannot serve this run" in logs and "using massive" in logs, warnings[:3]


def test_a_refused_key_on_the_primary_also_falls_back(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(
        monkeypatch, sandbox, sqlite_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive"
    )
    monkeypatch.setenv("FMP_API_KEY", "wrong-key")
    result = run_refresh(
        defs,
        dagster_instance,
    )
    assert result.success
    assert set(quote_sources(sqlite_url).values()) == {"massive"}


def test_a_symbol_outside_the_primarys_plan_comes_from_the_next_provider(
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FMP's plan refuses IBM (402): only IBM is asked of Massive, the rest stay FMP's."""
    sandbox = massive_sandbox(start_sandbox, faults=FaultConfig(plan_gated_symbols={"IBM"}))
    defs = provider_definitions(
        monkeypatch, sandbox, database_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive"
    )
    result = run_refresh(
        defs,
        dagster_instance,
    )
    assert result.success
    sources = quote_sources(database_url)
    assert sources.pop("IBM") == "massive"
    assert set(sources.values()) == {"fmp"}
    massive_requests = [e for e in sandbox.stats()["requests"] if e["path"].startswith("/v2/")]
    # IBM alone, then the consistency check's sample (it compares the two providers).
    assert massive_requests[0]["symbols"] == ["IBM"]
    metadata = materialization_metadata(result, "stocks")
    assert metadata["quotes_from_massive"] == 1
    assert metadata["quotes_from_fmp"] == len(TICKERS) - 1
    assert "asked of massive" in metadata["fallbacks"]


def test_a_symbol_every_provider_fails_gets_one_record_with_each_ones_reason(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(
        start_sandbox,
        faults=FaultConfig(plan_gated_symbols={"IBM"}, unknown_symbols={"GONE"}),
        market_universe=(*TICKERS, "GONE"),
    )
    defs = provider_definitions(
        monkeypatch,
        sandbox,
        sqlite_url,
        (*TICKERS, "GONE"),
        QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive",
    )
    result = run_refresh(
        defs,
        dagster_instance,
        run_config={
            "ops": {"stocks_refresh_outcome": {"config": {"max_failed_share": 0.5}}},
        },
    )
    assert result.success
    (failure,) = [
        f
        for f in result.output_for_node("raw_quotes.combine_quote_batches").failures
        if f.symbol == "GONE"
    ]
    assert failure.message.startswith("fmp: no_quote (")
    assert "; massive: no_quote (" in failure.message
    assert "GONE" not in quote_sources(sqlite_url)


def test_daily_history_from_massive_grouped_daily_costs_one_request_per_session(
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """12 tickers over 5 sessions: 5 grouped-daily requests, not 12 per-ticker ones; a
    ticker Massive's grouped answer lacks is asked of FMP, for the range, alone."""
    sandbox = massive_sandbox(
        start_sandbox, faults=FaultConfig(endpoint_gated_symbols={"massive_grouped": {"IBM"}})
    )
    defs = provider_definitions(
        monkeypatch, sandbox, database_url, TICKERS, QUOTE_PIPELINE_HISTORY_PROVIDERS="massive,fmp"
    )
    result = run_daily(defs, dagster_instance, FIRST, LAST)
    assert result.success
    endpoints = Counter(entry["path"] for entry in sandbox.stats()["requests"])
    grouped = [p for p in endpoints if p.startswith("/v2/aggs/grouped/")]
    assert sum(endpoints[p] for p in grouped) == SESSIONS
    assert not [p for p in endpoints if p.startswith("/v2/aggs/ticker/")]
    fmp_history = [p for p in endpoints if p.startswith("/stable/historical-price-eod")]
    assert sum(endpoints[p] for p in fmp_history) == 1  # IBM alone
    rows = stored_daily(database_url)
    assert len(rows) == len(TICKERS) * SESSIONS
    assert Counter(r["source"] for r in rows) == {
        "massive": (len(TICKERS) - 1) * SESSIONS,
        "fmp": SESSIONS,
    }


def test_fewer_tickers_than_sessions_ask_massive_per_ticker(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(
        monkeypatch,
        sandbox,
        sqlite_url,
        ("AAPL", "MSFT"),
        QUOTE_PIPELINE_HISTORY_PROVIDERS="massive",
    )
    assert run_daily(defs, dagster_instance, FIRST, LAST).success
    paths = [entry["path"] for entry in sandbox.stats()["requests"]]
    assert len(paths) == 2 and all(p.startswith("/v2/aggs/ticker/") for p in paths), paths
    assert len(stored_daily(sqlite_url)) == 2 * SESSIONS


# --- keys and the consistency check -----------------------------------------------------------


def test_neither_key_appears_in_any_log_event_or_url(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    sandbox = massive_sandbox(
        start_sandbox, faults=FaultConfig(plan_gated_symbols={"IBM"}, unknown_symbols={"GONE"})
    )
    defs = provider_definitions(
        monkeypatch,
        sandbox,
        sqlite_url,
        (*TICKERS, "GONE"),
        QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive",
        QUOTE_PIPELINE_HISTORY_PROVIDERS="massive,fmp",
    )
    monkeypatch.setenv("FMP_API_KEY", "wrong-fmp-key-5c1e0a")  # a refused key is echoed nowhere
    refresh = run_refresh(
        defs,
        dagster_instance,
        run_config={
            "ops": {"stocks_refresh_outcome": {"config": {"max_failed_share": 0.5}}},
        },
    )
    daily = run_daily(defs, dagster_instance, FIRST, LAST)
    assert refresh.success and daily.success
    text = " ".join(
        str(record.dagster_event) + str(record.user_message)
        for run in (refresh, daily)
        for record in dagster_instance.all_logs(run.run_id)
    )
    captured = capfd.readouterr()
    for key in (MASSIVE_SANDBOX_KEY, "wrong-fmp-key-5c1e0a", SANDBOX_KEY):
        assert key not in text
        assert key not in captured.out + captured.err
    massive_requests = [e for e in sandbox.stats()["requests"] if e["path"].startswith("/v2/")]
    assert massive_requests
    assert all(e.get("auth") == "header" for e in massive_requests), massive_requests[:2]


def check_of(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (found,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return found


def test_the_consistency_check_passes_when_providers_agree_and_warns_when_they_do_not(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fmp_sandbox = massive_sandbox(start_sandbox)
    agreeing = provider_definitions(
        monkeypatch, fmp_sandbox, sqlite_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive"
    )
    result = run_refresh(
        agreeing,
        dagster_instance,
    )
    assert result.success
    check = check_of(result, "providers_agree")
    assert check.passed, check.description
    assert check.metadata["compared"].value == len(TICKERS)
    # Another market (another seed) for Massive: prices far apart.
    other_market = massive_sandbox(start_sandbox, seed=7)
    monkeypatch.setenv("MASSIVE_BASE_URL", other_market.url)
    result = run_refresh(
        agreeing,
        dagster_instance,
    )
    assert result.success  # a warning never fails the refresh
    check = check_of(result, "providers_agree")
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["disagreeing"].value > 0
    assert "between fmp and massive" in (check.description or "")


def test_with_one_provider_the_consistency_check_has_nothing_to_compare(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(start_sandbox)
    # The deployment's own definitions, with no Massive key: FMP alone, as by default.
    defs = pipeline_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    result = run_refresh(
        defs,
        dagster_instance,
    )
    check = check_of(result, "providers_agree")
    assert check.passed and "nothing to compare" in (check.description or "")
    assert set(requests_by_dialect(sandbox)) == {"fmp"}


def test_the_provider_order_is_resource_config_and_refused_in_one_line_when_unknown(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(start_sandbox)
    defs = provider_definitions(monkeypatch, sandbox, sqlite_url, TICKERS)
    # The launchpad's choice beats the deployment's variable (unset here: FMP alone).
    config: dict[str, Any] = {"resources": {"providers": {"config": {}}}}
    config["resources"]["providers"]["config"] = {"quote_providers": ["massive"]}
    assert run_refresh(defs, dagster_instance, run_config=config).success
    assert set(quote_sources(sqlite_url).values()) == {"massive"}
    config["resources"]["providers"]["config"] = {"quote_providers": ["massive", "tiingo"]}
    result = run_refresh(defs, dagster_instance, run_config=config)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "tiingo" in message and "fmp, massive" in message


def test_a_quota_that_runs_out_mid_refresh_leaves_the_rest_to_the_next_provider(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 2 p.m. case: FMP's daily quota is spent after a few quotes; the tickers it never
    asked are asked of Massive, and the refresh is whole."""
    sandbox = massive_sandbox(start_sandbox, premium=False, faults=FaultConfig(daily_quota=6))
    provider_definitions(
        monkeypatch, sandbox, sqlite_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="fmp,massive"
    )
    quick: dict[str, Any] = {"backoff_initial": 0.01, "pass_delay_seconds": 0.0}
    spent_fast = {"quota_exhausted_after": 0.2, "quota_exhausted_streak": 2, "max_concurrency": 2}
    defs = build_definitions(
        resources={
            "fmp": FMPResource(api_key=dg.EnvVar("FMP_API_KEY"), **quick, **spent_fast),
            "massive": MassiveResource(api_key=dg.EnvVar("MASSIVE_API_KEY"), **quick),
        }
    )
    result = run_refresh(defs, dagster_instance)
    assert result.success
    sources = Counter(quote_sources(sqlite_url).values())
    assert sum(sources.values()) == len(TICKERS)
    assert 0 < sources["fmp"] < len(TICKERS) and sources["massive"] > 0
    check = check_of(result, "api_quota_not_exhausted")
    assert check.passed  # no ticker was left without a quote by the spent quota


def test_grouped_daily_sessions_that_fail_are_asked_of_the_next_provider(
    database_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Massive answers 5xx for some sessions (no retry left): those sessions, and only
    that span, are asked of FMP; every row is stored once, each naming its provider."""
    fmp_side = massive_sandbox(start_sandbox)
    massive_side = massive_sandbox(
        start_sandbox, seed=11, faults=FaultConfig(server_error_rate=0.4)
    )
    provider_definitions(
        monkeypatch, fmp_side, database_url, TICKERS, QUOTE_PIPELINE_HISTORY_PROVIDERS="massive,fmp"
    )
    monkeypatch.setenv("MASSIVE_BASE_URL", massive_side.url)
    no_retry: dict[str, Any] = {"attempts": 1, "extra_passes": 0, "backoff_initial": 0.01}
    defs = build_definitions(
        resources={
            "fmp": FMPResource(api_key=dg.EnvVar("FMP_API_KEY"), backoff_initial=0.01),
            "massive": MassiveResource(api_key=dg.EnvVar("MASSIVE_API_KEY"), **no_retry),
        }
    )
    result = run_daily(defs, dagster_instance, FIRST, LAST)
    assert result.success
    failed_days = sorted(
        entry["params"]["date"]
        for entry in massive_side.stats()["requests"]
        if entry["status"] >= 500
    )
    assert failed_days, "seed 11 at 40 % fails some sessions"
    rows = stored_daily(database_url)
    assert len(rows) == len(TICKERS) * SESSIONS
    by_day = {
        day: {r["source"] for r in rows if r["date"].isoformat() == day}
        for day in {r["date"].isoformat() for r in rows}
    }
    span = (failed_days[0], failed_days[-1])
    for day, sources in by_day.items():
        assert sources == ({"fmp"} if span[0] <= day <= span[1] else {"massive"}), day
    fmp_requests = [e for e in fmp_side.stats()["requests"] if e["path"].startswith("/stable/")]
    assert len(fmp_requests) == len(TICKERS)  # one per ticker, for the failed span only
    assert {(e["params"]["from"], e["params"]["to"]) for e in fmp_requests} == {span}


def test_grouped_daily_that_fails_every_session_fails_the_run_and_leaves_tickers_pending(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Massive alone, every grouped-daily request a 5xx: not "no data" — the run fails in
    words, every ticker is left to the retry sensor, stored rows are untouched."""
    sandbox = massive_sandbox(start_sandbox, faults=FaultConfig(server_error_rate=1.0))
    provider_definitions(
        monkeypatch, sandbox, sqlite_url, TICKERS, QUOTE_PIPELINE_HISTORY_PROVIDERS="massive"
    )
    no_retry: dict[str, Any] = {"attempts": 1, "extra_passes": 0}
    defs = build_definitions(
        resources={
            "fmp": FMPResource(api_key=dg.EnvVar("FMP_API_KEY")),
            "massive": MassiveResource(api_key=dg.EnvVar("MASSIVE_API_KEY"), **no_retry),
        }
    )
    result = run_daily(defs, dagster_instance, FIRST, LAST)
    assert not result.success
    failure = result.failure_data_for_node("daily_prices")
    assert failure is not None
    assert f"{len(TICKERS)} tickers still failed" in str(failure.user_failure_data.description)
    assert stored_daily(sqlite_url) == []
    pending = {p.ticker for p in pending_symbols(create_db_engine(sqlite_url))}
    assert pending == set(TICKERS)


def test_a_configured_provider_without_a_key_is_skipped_in_words(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """massive,fmp with no MASSIVE_API_KEY in the deployment: the run says Massive has no
    key and is served by FMP; nothing fails."""
    sandbox = massive_sandbox(start_sandbox)
    defs = pipeline_definitions(
        monkeypatch, sandbox, sqlite_url, TICKERS, QUOTE_PIPELINE_QUOTE_PROVIDERS="massive,fmp"
    )
    result = run_refresh(defs, dagster_instance)
    assert result.success
    assert set(quote_sources(sqlite_url).values()) == {"fmp"}
    logs = " ".join(str(e.message) for e in dagster_instance.all_logs(result.run_id))
    assert "massive cannot serve this run (no Massive API key: set MASSIVE_API_KEY" in logs


def test_a_share_class_is_asked_of_massive_in_its_own_spelling(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracked as FMP spells it (BRK-B), asked of Massive as BRK.B, stored as tracked — in
    the snapshot, the per-ticker aggregates and the grouped daily bars alike."""
    universe = (*TICKERS, "BRK.B")
    sandbox = massive_sandbox(start_sandbox, market_universe=universe)
    defs = provider_definitions(
        monkeypatch,
        sandbox,
        sqlite_url,
        ("AAPL", "BRK-B"),
        QUOTE_PIPELINE_QUOTE_PROVIDERS="massive",
        QUOTE_PIPELINE_HISTORY_PROVIDERS="massive",
    )
    assert run_refresh(defs, dagster_instance).success
    assert quote_sources(sqlite_url) == {"AAPL": "massive", "BRK-B": "massive"}
    asked = {s for e in sandbox.stats()["requests"] for s in e["symbols"]}
    assert "BRK.B" in asked and "BRK-B" not in asked
    assert run_daily(defs, dagster_instance, FIRST, LAST).success  # 2 tickers: aggregates
    add_tickers(create_db_engine(sqlite_url), TICKERS, now=datetime.now(UTC))
    assert run_daily(defs, dagster_instance, FIRST, LAST).success  # 13 tickers: grouped
    rows = stored_daily(sqlite_url)
    assert sum(r["ticker"] == "BRK-B" for r in rows) == SESSIONS
    assert len(rows) == (len(TICKERS) + 2 - 1) * SESSIONS  # AAPL is one of TICKERS


def test_a_share_class_whose_grouped_row_is_malformed_comes_from_the_next_provider(
    sqlite_url: str,
    start_sandbox: SandboxFactory,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = massive_sandbox(
        start_sandbox,
        market_universe=(*TICKERS, "BRK.B"),
        faults=FaultConfig(bad_shape_symbols={"BRK.B"}),
    )
    defs = provider_definitions(
        monkeypatch,
        sandbox,
        sqlite_url,
        (*TICKERS, "BRK-B"),
        QUOTE_PIPELINE_HISTORY_PROVIDERS="massive,fmp",
    )
    assert run_daily(defs, dagster_instance, FIRST, LAST).success
    brk = [r for r in stored_daily(sqlite_url) if r["ticker"] == "BRK-B"]
    assert len(brk) == SESSIONS and {r["source"] for r in brk} == {"fmp"}
