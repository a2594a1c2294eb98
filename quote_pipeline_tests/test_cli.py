"""The `quote-pipeline` console script and Dagster's CLI, run as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from quote_pipeline.sandbox import SandboxServer
from quote_pipeline.storage import count_snapshots, create_db_engine, list_tickers, read_stocks
from quote_pipeline_tests.conftest import SANDBOX_KEY
from quote_pipeline_tests.helpers import served_quote

BIN = Path(sys.executable).parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "quote-pipeline"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_tickers_add_list_remove(database_url: str) -> None:
    db = ["--database-url", database_url]
    added = cli(*db, "tickers", "add", "aapl", "BRK.B", "brk-b", "^GSPC")
    assert added.returncode == 0, added.stderr
    assert "added 4" in added.stdout
    assert cli(*db, "tickers", "list").stdout.split() == ["AAPL", "BRK-B", "BRK.B", "^GSPC"]
    removed = cli(*db, "tickers", "remove", "brk-b")
    assert removed.returncode == 0 and "removed 1" in removed.stdout
    assert cli(*db, "tickers", "list").stdout.split() == ["AAPL", "BRK.B", "^GSPC"]


@pytest.mark.parametrize("bad", ["", "BAD SYM", "X;DROP", "'Q'", '"Q"', "TOOLONGSYMBOL1234"])
def test_a_bad_symbol_is_named_and_nothing_is_added(sqlite_url: str, bad: str) -> None:
    result = cli("--database-url", sqlite_url, "tickers", "add", "MSFT", bad, "AAPL")
    assert result.returncode == 2
    assert repr(bad) in result.stderr
    assert list_tickers(create_db_engine(sqlite_url)) == []


def test_the_database_url_comes_from_the_environment(postgres_url: str) -> None:
    result = cli("tickers", "add", "NVDA", env={"QUOTE_PIPELINE_DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    assert list_tickers(create_db_engine(postgres_url)) == ["NVDA"]


def test_import_a_csv_with_a_ticker_column(tmp_path: Path, database_url: str) -> None:
    csv = tmp_path / "universe.csv"
    csv.write_text("name,Ticker\nApple,aapl\nBerkshire, BRK.B \nApple again,AAPL\n")
    result = cli("--database-url", database_url, "tickers", "import", str(csv))
    assert result.returncode == 0, result.stderr
    assert list_tickers(create_db_engine(database_url)) == ["AAPL", "BRK.B"]


def test_import_one_symbol_per_line(tmp_path: Path, sqlite_url: str) -> None:
    listing = tmp_path / "tickers.txt"
    listing.write_text("# my list\nmsft\n\n^GSPC\nEURUSD=X\n")
    result = cli("--database-url", sqlite_url, "tickers", "import", str(listing))
    assert result.returncode == 0, result.stderr
    assert list_tickers(create_db_engine(sqlite_url)) == ["EURUSD=X", "MSFT", "^GSPC"]


def test_import_with_a_bad_symbol_adds_nothing(tmp_path: Path, sqlite_url: str) -> None:
    listing = tmp_path / "tickers.txt"
    listing.write_text("MSFT\nBAD;ONE\nAAPL\n")
    result = cli("--database-url", sqlite_url, "tickers", "import", str(listing))
    assert result.returncode == 2 and "'BAD;ONE'" in result.stderr
    assert list_tickers(create_db_engine(sqlite_url)) == []


def test_import_refuses_a_csv_without_a_ticker_column(tmp_path: Path, sqlite_url: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("symbol,name\nAAPL,Apple\n")
    result = cli("--database-url", sqlite_url, "tickers", "import", str(csv))
    assert result.returncode == 2 and "'ticker' column" in result.stderr


def _dagster_env(sandbox: SandboxServer, database_url: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": SANDBOX_KEY,
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        "DAGSTER_HOME": str(home),
    }


@pytest.mark.parametrize(
    "command",
    [
        ["job", "execute", "-m", "quote_pipeline.definitions", "-j", "refresh_quotes"],
        [
            "asset",
            "materialize",
            "-m",
            "quote_pipeline.definitions",
            "--select",
            "tickers,raw_quotes,stocks,quote_snapshots",
        ],
    ],
    ids=["job-execute", "asset-materialize"],
)
def test_dagster_cli_runs_the_refresh(
    sandbox: SandboxServer, postgres_url: str, tmp_path: Path, command: list[str]
) -> None:
    env = _dagster_env(sandbox, postgres_url, tmp_path)
    assert cli("tickers", "add", "AAPL", "BTCUSD", "^GSPC", env=env).returncode == 0
    result = subprocess.run(
        [str(BIN / "dagster"), *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    engine = create_db_engine(postgres_url)
    rows = {r.ticker: r.price for r in read_stocks(engine)}
    assert rows == {t: served_quote(sandbox, t)["price"] for t in ("AAPL", "BTCUSD", "^GSPC")}
    assert count_snapshots(engine) == 3
    assert SANDBOX_KEY not in result.stdout + result.stderr

    shown = cli("stocks", env=env)
    assert shown.returncode == 0
    assert str(rows["BTCUSD"]) in shown.stdout


def test_demo_refreshes_fetches_history_prints_metrics_and_writes_a_chart(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = cli("--database-url", sqlite_url, "demo", "--latency-ms", "0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "seeded 23 sample tickers" in out
    assert "23 row(s)" in out
    header, *rows = out.split("daily_metrics of 5 tickers, latest session:\n")[1].splitlines()[:6]
    assert header.split() == [
        *("ticker", "date", "return_1d", "sma_20", "sma_50", "rsi_14", "volatility_20"),
        "drawdown",
    ]
    assert [r.split()[0] for r in rows] == ["AAPL", "JPM", "MSFT", "NVDA", "^GSPC"]
    assert len(rows[0].split()) == 11  # every value shown: 126 sessions cover SMA 50
    chart = tmp_path / "AAPL-chart.png"
    assert f"wrote {chart} (AAPL candlestick chart, 640x400" in out
    assert "120 sessions" in out
    with Image.open(chart) as image:
        assert (image.format, image.size) == ("PNG", (640, 400))
    # The project's console logger (INFO and above), not Dagster's default (every event).
    assert " - DEBUG - " not in result.stderr and " - INFO - " in result.stderr
