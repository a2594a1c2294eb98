"""Regenerate the screenshots in docs/: the pages of the Dagster UI a user reads first.

    .venv/bin/python scripts/screenshot_ui.py [--only NAME ...] [--out-dir docs]

docs/asset-graph.png (the global lineage, groups open), docs/stocks-checks.png (the checks of
`stocks`), docs/daily-prices-partition.png (one `daily_prices` partition of a backfill) and
docs/refresh-run.png (a refresh run's page).

Needs headless Chromium (Debian: `sudo apt-get install -y chromium chromium-driver`); installs
nothing itself. Everything stays on this machine: a throwaway DAGSTER_HOME configured as
scripts/dev.sh configures the local instance (the project's dagster.yaml, SQLite storage),
the FMP sandbox on a loopback port (one symbol it has no quote for), `dagster dev` on
127.0.0.1 (webserver and daemon), a refresh and a three-session `daily_prices` backfill
launched through the webserver as a user would, and Chromium told to resolve no other host.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICKERS = (
    *("AAPL", "AMZN", "GOOGL", "META", "MSFT", "NVDA", "TSLA", "JPM", "V", "KO", "PEP", "XOM"),
    *("JNJ", "PG", "WMT", "DIS", "NFLX", "AMD", "INTC", "IBM", "SPY", "QQQ"),
)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    # Only loopback resolves: the page cannot fetch anything from anywhere else.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


def find_chromium() -> str:
    """The Chromium binary, or exit with how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    sys.exit(
        "screenshot_ui.py needs headless Chromium and found none on PATH.\n"
        "On Debian/Ubuntu: sudo apt-get install -y chromium chromium-driver"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_location(url: str, webserver: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the webserver answers and the code location has loaded."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if webserver.poll() is not None:
            sys.exit(f"dagster-webserver exited with {webserver.returncode}")
        try:
            data = requests.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
            entries = data["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (requests.RequestException, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    sys.exit("the webserver did not load the code location in time")


UNKNOWN = "ZZZQ"  # the sandbox has no quote for it: the checks show how that reads
# Open: the groups whose lineage the README describes; news and reference_data stay closed
# (one box each), so that the whole graph fits one screen.
GROUPS = ("quotes", "price_history", "corporate_actions")


def shots(refresh_run: str, partition: str) -> dict[str, tuple[str, str | None]]:
    """Screenshot name -> (UI page, window size if not the default)."""
    expanded = ",".join(f"global@global:{group}" for group in GROUPS)
    return {
        # Tall: the UI stacks the two groups, and centres the graph in the window.
        "asset-graph": (f"/asset-groups?expanded={expanded}", "1800,2400"),
        "stocks-checks": ("/assets/stocks?view=checks&checkDetail=coverage", None),
        "daily-prices-partition": (
            f"/assets/daily_prices?view=partitions&partition={partition}",
            None,
        ),
        "refresh-run": (f"/runs/{refresh_run}", None),
    }


def launch_and_wait(url: str, job: str, tags: dict[str, str] | None = None) -> str:
    """Launch ``job`` through the webserver (the queue, then the daemon), wait for its end."""
    from dagster_graphql import DagsterGraphQLClient

    host, port = url.removeprefix("http://").split(":")
    client = DagsterGraphQLClient(host, port_number=int(port))
    run_id = client.submit_job_execution(job, tags=tags or {})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            print(f"{job}: {status}")
            return run_id
        time.sleep(1)
    sys.exit(f"{job} did not finish in time")


def last_sessions(count: int) -> list[str]:
    """The last ``count`` NYSE sessions that have closed (their daily bars are final)."""
    from quote_pipeline.market_calendar import session_hours, sessions_between

    today = datetime.now(UTC).date()
    sessions = sessions_between(today - timedelta(days=20), today)
    closed = [d for d in sessions if session_hours(d)[1] <= datetime.now(UTC)]
    return [d.isoformat() for d in closed[-count:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the screenshots to take")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--size", default="1600,1000", help="window WIDTH,HEIGHT")
    parser.add_argument("--wait-ms", type=int, default=20000, help="virtual time to render")
    args = parser.parse_args(argv)
    chromium = find_chromium()

    from quote_pipeline.deployment import write_dev_instance
    from quote_pipeline.sandbox import FaultConfig, SandboxConfig, SandboxServer
    from quote_pipeline.storage import add_tickers, create_db_engine

    work = Path(tempfile.mkdtemp(prefix="qp-screenshot-"))
    home = work / "dagster_home"
    write_dev_instance(home)
    sandbox = SandboxServer(
        SandboxConfig(
            api_key="screenshot-key", premium=True, faults=FaultConfig(unknown_symbols={UNKNOWN})
        )
    ).start()
    database_url = f"sqlite:///{work / 'quotes.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FMP_", "QUOTE_PIPELINE_"))},
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": "screenshot-key",
        "QUOTE_PIPELINE_DATABASE_URL": database_url,
        "QUOTE_PIPELINE_DATA_DIR": str(work / "data"),
    }
    add_tickers(create_db_engine(database_url), [*TICKERS, UNKNOWN], now=datetime.now(UTC))
    dagster: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (work / "dagster.log").open("wb") as log:
            dagster = subprocess.Popen(
                [
                    *(str(BIN / "dagster"), "dev", "-w", str(ROOT / "workspace.yaml")),
                    *("-h", "127.0.0.1", "-p", str(port)),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its daemon and servers
            )
        wait_for_location(url, dagster)
        refresh_run = launch_and_wait(url, "refresh_quotes")
        launch_and_wait(url, "refresh_quotes")  # a second point on the plots
        launch_and_wait(url, "check_stocks_freshness")  # every check of stocks evaluated
        sessions = last_sessions(3)
        launch_and_wait(
            url,
            "daily_prices_job",
            {
                "dagster/asset_partition_range_start": sessions[0],
                "dagster/asset_partition_range_end": sessions[-1],
            },
        )
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name, (path, size) in shots(refresh_run, sessions[1]).items():
            if args.only and name not in args.only:
                continue
            out = args.out_dir / f"{name}.png"
            subprocess.run(
                [
                    chromium,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={work / 'chromium-profile'}",
                    f"--window-size={size or args.size}",
                    f"--virtual-time-budget={args.wait_ms}",
                    f"--screenshot={out}",
                    f"{url}{path}",
                ],
                check=True,
                capture_output=True,
                timeout=180,
            )
            print(f"wrote {out}")
        return 0
    finally:
        if dagster is not None and dagster.poll() is None:
            os.killpg(dagster.pid, signal.SIGTERM)
            try:
                dagster.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(dagster.pid, signal.SIGKILL)
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
