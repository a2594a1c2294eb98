"""Regenerate the screenshots in docs/: the pages of the Dagster UI a user reads first.

    .venv/bin/python scripts/screenshot_ui.py [--only NAME ...] [--out-dir docs]

docs/asset-graph.png (the global lineage, groups open), docs/stocks-checks.png (the checks of
`stocks`), docs/daily-prices-partition.png (one `daily_prices` partition of a backfill),
docs/refresh-run.png (a refresh run's page) and docs/daily-metrics-chart.png (the
`daily_metrics` page with the AAPL candlestick chart of its latest materialization open).
NAME is one of those file names without `.png`; the runs a name needs are launched only when
it is wanted (daily-metrics-chart alone: about two minutes, most of it the automation
sensors' 30-second ticks).

Needs headless Chromium, and chromedriver for daily-metrics-chart (Debian: `sudo apt-get
install -y chromium chromium-driver`); installs nothing itself. Everything stays on this
machine: a throwaway DAGSTER_HOME configured as scripts/dev.sh configures the local instance
(the project's dagster.yaml, SQLite storage), the FMP sandbox on a loopback port (one symbol
it has no quote for), `dagster dev` on 127.0.0.1 (webserver and daemon), runs launched
through the webserver as a user would (a refresh and a three-session `daily_prices`
backfill; for daily-metrics-chart, six months of `daily_prices` in one run and
`refresh_corporate_actions`, after which the automation sensors materialize
`daily_prices_adjusted`, then `daily_metrics`), and Chromium told to resolve no other host.

The pages are captured by `chromium --screenshot`. The chart needs a click: the UI shows a
markdown metadata entry over 1,000 characters (a chart is a ~14,000-character base64 PNG)
only as a "[Show Markdown]" link (in the Metadata table of the asset's Overview tab, for one)
that opens a dialog rendering it. For that screenshot, Chromium is driven through
chromedriver with plain W3C WebDriver calls over HTTP (`requests`, no client library).
"""

from __future__ import annotations

import argparse
import base64
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


def launch_and_wait(
    url: str, job: str, tags: dict[str, str] | None = None, *, must_succeed: bool = False
) -> str:
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
            if must_succeed and status != "SUCCESS":
                sys.exit(f"{job} ended {status}: the screenshots after it would show nothing")
            return run_id
        time.sleep(1)
    sys.exit(f"{job} did not finish in time")


def last_sessions(count: int) -> list[str]:
    """The last ``count`` NYSE sessions that have closed (their daily bars are final)."""
    from quote_pipeline.market_calendar import session_hours, sessions_between

    today = datetime.now(UTC).date()
    sessions = sessions_between(today - timedelta(days=max(20, 2 * count)), today)
    closed = [d for d in sessions if session_hours(d)[1] <= datetime.now(UTC)]
    return [d.isoformat() for d in closed[-count:]]


def take_pages(
    args: argparse.Namespace, wanted: set[str], chromium: str, work: Path, url: str
) -> None:
    """The runs the pages show, then each wanted page as Chromium renders it, no click."""
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
    for name, (path, size) in shots(refresh_run, sessions[1]).items():
        if name not in wanted:
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


# --- daily-metrics-chart: six months of history, the automation sensors, a click -----------

DAILY_METRICS_CHART = "daily-metrics-chart"
HISTORY_SESSIONS = 126  # about six months: SMA 50 is drawn over most of a 120-session chart
CHART_TICKER = "AAPL"  # the first tracked ticker: in daily_metrics' default watchlist
AUTOMATION_TIMEOUT = 600  # the sensors tick every 30 s; each run takes seconds


def graphql(url: str, query: str, **variables: object) -> dict:
    response = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    return response.json()["data"]


def last_materialized(url: str, asset: str) -> float | None:
    """When ``asset`` was last materialized (seconds since the epoch), or None."""
    query = """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
        ... on Asset { assetMaterializations(limit: 1) { timestamp } } } }"""
    found = graphql(url, query, key={"path": [asset]})["assetOrError"]
    events = found.get("assetMaterializations") or []
    return int(events[0]["timestamp"]) / 1000 if events else None


def failed_runs_since(url: str, since: float) -> list[str]:
    query = """query ($since: Float!) { runsOrError(filter: {statuses: [FAILURE],
        createdAfter: $since}) { ... on Runs { results { runId jobName } } } }"""
    runs = graphql(url, query, since=since)["runsOrError"].get("results") or []
    return [f"{run['jobName']} {run['runId']}" for run in runs]


def wait_for_automation(url: str, asset: str, *, after: float, log: Path) -> float:
    """Until the automation sensors (the daemon of `dagster dev`) have materialized ``asset``
    since ``after``; when that was."""
    deadline = time.monotonic() + AUTOMATION_TIMEOUT
    while time.monotonic() < deadline:
        when = last_materialized(url, asset)
        if when is not None and when > after:
            print(f"{asset}: materialized by its automation sensor")
            return when
        if failed := failed_runs_since(url, after):
            sys.exit(f"waiting for {asset}, run(s) failed: {', '.join(failed)}")
        time.sleep(3)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    sys.exit(f"{asset} was not materialized in {AUTOMATION_TIMEOUT} s; the log ends:\n{tail}")


def prepare_daily_metrics(url: str, log: Path) -> None:
    """Six months of daily_prices in one run, then the corporate actions; the automation
    sensors follow with daily_prices_adjusted, then daily_metrics (and its charts)."""
    sessions = last_sessions(HISTORY_SESSIONS)
    launch_and_wait(
        url,
        "daily_prices_job",
        {
            "dagster/asset_partition_range_start": sessions[0],
            "dagster/asset_partition_range_end": sessions[-1],
        },
        must_succeed=True,
    )
    started = time.time()
    # daily_prices_adjusted waits for its corporate-actions inputs to exist: from here on.
    launch_and_wait(url, "refresh_corporate_actions", must_succeed=True)
    adjusted = wait_for_automation(url, "daily_prices_adjusted", after=started, log=log)
    wait_for_automation(url, "daily_metrics", after=adjusted, log=log)


def find_chromedriver() -> str:
    if found := shutil.which("chromedriver"):
        return found
    sys.exit(
        f"the {DAILY_METRICS_CHART} screenshot clicks in the page: it needs chromedriver.\n"
        "On Debian/Ubuntu: sudo apt-get install -y chromium-driver"
    )


class WebDriver:
    """Just enough of the W3C WebDriver protocol, as plain HTTP to chromedriver, to open a
    page, click in it and capture it: no client library."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the protocol's key of an element id

    def __init__(self, endpoint: str, capabilities: dict) -> None:
        self.endpoint = endpoint
        created = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = f"/session/{created['sessionId']}"

    def _call(self, method: str, path: str, payload: dict | None = None) -> object:
        body = payload if payload is not None or method != "POST" else {}
        response = requests.request(method, self.endpoint + path, json=body, timeout=120)
        value = response.json()["value"]
        if response.status_code != 200:
            raise RuntimeError(f"WebDriver {method} {path}: {value.get('message', value)}")
        return value

    def command(self, method: str, path: str, payload: dict | None = None) -> object:
        return self._call(method, self.session + path, payload)

    def open(self, url: str) -> None:
        self.command("POST", "/url", {"url": url})

    def set_viewport(self, width: int, height: int) -> None:
        """The page's own area (what a screenshot captures), less the browser's frame."""
        frame = self.run("return [outerWidth - innerWidth, outerHeight - innerHeight]")
        assert isinstance(frame, list)
        self.command(
            "POST", "/window/rect", {"width": width + frame[0], "height": height + frame[1]}
        )

    def wait_for(self, xpath: str, timeout: float = 60) -> dict:
        """The first element matching ``xpath`` once it is there (the UI renders late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.command("POST", "/elements", {"using": "xpath", "value": xpath})
            if found:
                return found[0]
            time.sleep(0.5)
        raise RuntimeError(f"nothing in the page matched {xpath} in {timeout:.0f} s")

    def wait_until(self, script: str, *args: object, timeout: float = 60) -> None:
        """Until ``script`` (a function body) returns true."""
        deadline = time.monotonic() + timeout
        while not self.run(script, *args):
            if time.monotonic() > deadline:
                raise RuntimeError(f"still false after {timeout:.0f} s: {script}")
            time.sleep(0.25)

    def click(self, element: dict) -> None:
        self.command("POST", f"/element/{element[self.ELEMENT]}/click")

    def run(self, script: str, *args: object) -> object:
        return self.command("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, out: Path) -> None:
        out.write_bytes(base64.b64decode(self.command("GET", "/screenshot")))

    def quit(self) -> None:
        self.command("DELETE", "")


def capture_chart_dialog(
    chromium: str, chromedriver: str, work: Path, url: str, out: Path, size: str
) -> None:
    """daily_metrics' page with the candlestick chart of its latest materialization open.

    The Overview tab lists that materialization's metadata. A markdown entry longer than
    1,000 characters (a chart's is ~14,000: a base64 PNG) shows there only as a "[Show
    Markdown]" link, which opens a dialog rendering it; so chart_AAPL's link is clicked, in
    Chromium driven by chromedriver, and the page captured once the image has loaded."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    driver = subprocess.Popen(
        [chromedriver, f"--port={port}", f"--log-path={work / 'chromedriver.log'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{endpoint}/status", timeout=2).json()["value"]["ready"]:
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            if time.monotonic() > deadline or driver.poll() is not None:
                sys.exit("chromedriver did not start")
            time.sleep(0.2)
        options = {
            "binary": chromium,
            "args": [
                *CHROMIUM_FLAGS,
                f"--window-size={size}",
                f"--user-data-dir={work / 'chromedriver-profile'}",
            ],
        }
        browser = WebDriver(endpoint, {"browserName": "chrome", "goog:chromeOptions": options})
        try:
            width, height = (int(value) for value in size.split(","))
            browser.set_viewport(width, height)
            browser.open(f"{url}/assets/daily_metrics")
            link = browser.wait_for(
                f"//tr[td[1][normalize-space()='chart_{CHART_TICKER}']]"
                "//*[text()[normalize-space()='[Show Markdown]']]"
            )
            # In the middle of the window: the dialog opens over the other charts' rows.
            browser.run("arguments[0].scrollIntoView({block: 'center'})", link)
            browser.click(link)
            image = browser.wait_for(
                "//*[@role='dialog']//img[starts-with(@src, 'data:image/png')]"
            )
            browser.wait_until(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image
            )
            time.sleep(1)  # the dialog's opening transition
            browser.screenshot(out)
        finally:
            browser.quit()
    finally:
        driver.terminate()
        driver.wait(10)


def main(argv: list[str] | None = None) -> int:
    pages = list(shots("", ""))  # the names; the pages' paths are not known yet
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="*",
        choices=[*pages, DAILY_METRICS_CHART],
        metavar="NAME",
        help=f"names of the screenshots to take: {', '.join(pages)}, {DAILY_METRICS_CHART}",
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs")
    parser.add_argument("--size", default="1600,1000", help="window WIDTH,HEIGHT")
    parser.add_argument("--wait-ms", type=int, default=20000, help="virtual time to render")
    args = parser.parse_args(argv)
    wanted = set(args.only or [*pages, DAILY_METRICS_CHART])
    chromium = find_chromium()
    chromedriver = find_chromedriver() if DAILY_METRICS_CHART in wanted else ""

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
        args.out_dir.mkdir(parents=True, exist_ok=True)
        if wanted.intersection(pages):
            take_pages(args, wanted, chromium, work, url)
        if DAILY_METRICS_CHART in wanted:
            # After the pages: its six months of daily_prices would be the latest
            # materialization of daily-prices-partition's session.
            prepare_daily_metrics(url, work / "dagster.log")
            out = args.out_dir / f"{DAILY_METRICS_CHART}.png"
            capture_chart_dialog(chromium, chromedriver, work, url, out, args.size)
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
