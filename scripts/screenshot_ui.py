"""Regenerate docs/asset-graph.png: the asset graph as the Dagster UI draws it.

    .venv/bin/python scripts/screenshot_ui.py [--path UI_PAGE] [--out docs/asset-graph.png]

Needs headless Chromium (Debian: `sudo apt-get install -y chromium chromium-driver`); installs
nothing itself. Everything stays on this machine: a throwaway DAGSTER_HOME (SQLite), the FMP
sandbox on a loopback port, one refresh_quotes run so the graph shows materializations, a
`dagster-webserver` on 127.0.0.1, and Chromium told to resolve no other host.
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
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICKERS = ("AAPL", "AMZN", "GOOGL", "META", "MSFT", "NVDA", "TSLA")
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


def materialize_once(home: Path) -> None:
    """One refresh_quotes run in the throwaway instance, so the graph shows real status."""
    import dagster as dg

    from quote_pipeline.definitions import build_definitions
    from quote_pipeline.storage import add_tickers, create_db_engine

    add_tickers(create_db_engine(), TICKERS, now=datetime.now(UTC))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        job = build_definitions().resolve_job_def("refresh_quotes")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        print(f"refresh_quotes: {'success' if result.success else 'FAILED'}")
    finally:
        instance.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--path",
        default="/locations/quote_pipeline/asset-groups/quotes",
        help="UI page (default: the quotes group's lineage; /asset-groups is the global "
        "lineage, with groups collapsed)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "asset-graph.png")
    parser.add_argument("--size", default="1400,640", help="window WIDTH,HEIGHT")
    parser.add_argument("--wait-ms", type=int, default=20000, help="virtual time to render")
    args = parser.parse_args(argv)
    chromium = find_chromium()

    from quote_pipeline.sandbox import SandboxConfig, SandboxServer

    work = Path(tempfile.mkdtemp(prefix="qp-screenshot-"))
    home = work / "dagster_home"
    home.mkdir()
    # A throwaway SQLite instance: no telemetry, no first-visit tour over the graph.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    sandbox = SandboxServer(SandboxConfig(api_key="screenshot-key", premium=True)).start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FMP_", "QUOTE_PIPELINE_"))},
        "DAGSTER_HOME": str(home),
        "FMP_BASE_URL": sandbox.url,
        "FMP_API_KEY": "screenshot-key",
        "QUOTE_PIPELINE_DATABASE_URL": f"sqlite:///{work / 'quotes.db'}",
        "QUOTE_PIPELINE_DATA_DIR": str(work / "data"),
    }
    os.environ.update(env)
    webserver: subprocess.Popen[bytes] | None = None
    try:
        materialize_once(home)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (work / "webserver.log").open("wb") as log:
            webserver = subprocess.Popen(
                [
                    *(str(BIN / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml")),
                    *("-h", "127.0.0.1", "-p", str(port)),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its code server
            )
        wait_for_location(url, webserver)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={work / 'chromium-profile'}",
                f"--window-size={args.size}",
                f"--virtual-time-budget={args.wait_ms}",
                f"--screenshot={args.out}",
                f"{url}{args.path}",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        print(f"wrote {args.out}")
        return 0
    finally:
        if webserver is not None and webserver.poll() is None:
            os.killpg(webserver.pid, signal.SIGTERM)
            try:
                webserver.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(webserver.pid, signal.SIGKILL)
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
