"""The whole code location loads, the way `dagster dev` loads it."""

import subprocess
import sys

import dagster as dg
import pytest

from quote_pipeline.definitions import build_definitions, defs
from quote_pipeline.defs.resources import DatabaseResource, FMPResource
from quote_pipeline.storage.call_ledger import SqlCallLedger


def test_the_definitions_module_loads() -> None:
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {k.to_user_string() for k in repository.asset_graph.get_all_asset_keys()} >= {
        "tickers",
        "raw_quotes",
        "stocks",
    }


def test_refresh_quotes_selects_the_three_assets_and_runs_in_process() -> None:
    job = defs.resolve_job_def("refresh_quotes")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} >= {
        "tickers",
        "raw_quotes",
        "stocks",
    }
    assert job.executor_def.name == "in_process"


def test_loading_needs_no_secret_and_shows_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "do-not-show-me")
    loaded = build_definitions()
    fmp = loaded.resources["fmp"]
    assert "do-not-show-me" not in repr(fmp.__dict__)
    assert fmp.api_key == dg.EnvVar("FMP_API_KEY")


def test_every_asset_explains_itself() -> None:
    repository = defs.get_repository_def()
    for key in repository.asset_graph.get_all_asset_keys():
        node = repository.asset_graph.get(key)
        assert node.description, key
        assert node.group_name, key
        assert node.owners, key


def test_loading_the_code_location_freezes_what_it_loaded() -> None:
    # In a fresh interpreter, as the CLI loads it: the objects loaded with the definitions are
    # kept out of later collections (and the one at exit, ~0.4 s of every CLI run).
    code = "import gc, quote_pipeline.definitions; print(gc.get_freeze_count())"
    frozen = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert int(frozen) > 100_000


def test_the_plans_cap_is_counted_in_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMP_API_KEY", "wiring-key")
    monkeypatch.setenv("FMP_CALLS_PER_MINUTE", "300")
    wired = build_definitions()
    fmp = wired.resources["fmp"]
    assert fmp.database is wired.resources["database"]

    database = DatabaseResource(url="sqlite://")
    capped = FMPResource(api_key="k", base_url="http://127.0.0.1:9", calls_per_minute=300)
    assert capped.get_client().pacer.ledger is None  # counted in this process only
    shared = capped.model_copy(update={"database": database})
    ledger = shared.get_client().pacer.ledger
    assert isinstance(ledger, SqlCallLedger)
    assert "k" not in ledger.account  # a hash of the account, never the key
    uncapped = shared.model_copy(update={"calls_per_minute": None})
    assert uncapped.get_client().pacer.ledger is None  # no cap, nothing to count
