"""`quote-pipeline`: manage the tracked tickers, show the stocks table, migrate the database,
run the sandbox/demo."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from quote_pipeline.charts import ChartError
from quote_pipeline.models import InvalidSymbolError
from quote_pipeline.sandbox.command import add_sandbox_parser
from quote_pipeline.storage import (
    add_tickers,
    create_db_engine,
    display_url,
    list_tickers,
    read_stocks,
    remove_tickers,
    resolve_database_url,
)
from quote_pipeline.storage.database import DatabaseUrlError, database_error_line
from quote_pipeline.storage.schema_migrations import (
    SchemaMigrationError,
    current_revision,
    head_revision,
    known_revisions,
    predates_migrations,
    upgrade,
)
from quote_pipeline.tickers_file import TickerFileError, read_ticker_file

EXIT_ERROR = 1
EXIT_USAGE = 2


def _engine(args: argparse.Namespace):
    return create_db_engine(args.database_url)


def cmd_tickers_add(args: argparse.Namespace) -> int:
    added = add_tickers(_engine(args), args.symbols, now=datetime.now(UTC))
    print(f"added {len(added)} ticker(s): {' '.join(added)}" if added else "nothing new to add")
    return 0


def cmd_tickers_remove(args: argparse.Namespace) -> int:
    removed = remove_tickers(_engine(args), args.symbols)
    print(f"removed {len(removed)} ticker(s): {' '.join(removed)}" if removed else "none tracked")
    return 0


def cmd_tickers_list(args: argparse.Namespace) -> int:
    for symbol in list_tickers(_engine(args)):
        print(symbol)
    return 0


def cmd_tickers_import(args: argparse.Namespace) -> int:
    symbols = read_ticker_file(Path(args.file))
    added = add_tickers(_engine(args), symbols, now=datetime.now(UTC))
    print(f"read {len(symbols)} symbol(s) from {args.file}; added {len(added)} new")
    return 0


def cmd_stocks(args: argparse.Namespace) -> int:
    print_stocks(args.database_url, limit=args.limit)
    return 0


def print_stocks(database_url: str | None, *, limit: int | None = None) -> None:
    """Print the stocks table (prices as stored, exact)."""
    rows = read_stocks(create_db_engine(database_url))
    print(f"stocks in {display_url(resolve_database_url(database_url))}: {len(rows)} row(s)")
    if not rows:
        return
    frame = pd.DataFrame(
        [
            {
                "ticker": r.ticker,
                "price": str(r.price),
                "volume": r.volume,
                "change": "" if r.change is None else str(r.change),
                "quoted_at (UTC)": r.quoted_at.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for r in rows[:limit]
        ]
    )
    print(frame.to_string(index=False))


def cmd_news(args: argparse.Namespace) -> int:
    """Print a ticker's stored headlines of the last ``--days`` days, newest first."""
    from quote_pipeline.models import normalize_symbol
    from quote_pipeline.storage.news import read_news

    ticker = normalize_symbol(args.ticker)
    since = datetime.now(UTC) - timedelta(days=args.days)
    rows = read_news(_engine(args), ticker, since=since)
    print(f"{ticker}: {len(rows)} stored article(s) in the last {args.days} day(s)")
    if rows:
        frame = pd.DataFrame(
            [
                {
                    "published (UTC)": r.published_at.strftime("%Y-%m-%d %H:%M"),
                    "sentiment": f"{r.sentiment:+.3f}",
                    "label": r.sentiment_label,
                    "publisher": r.publisher or "",
                    "title": r.title if len(r.title) <= 90 else r.title[:89] + "…",
                }
                for r in rows
            ]
        )
        print(frame.to_string(index=False))
    return 0


DEFAULT_CHART_SESSIONS = 120


def cmd_chart(args: argparse.Namespace) -> int:
    """Write a candlestick PNG of a ticker's stored prices (no API call)."""
    from quote_pipeline import charts
    from quote_pipeline.models import normalize_symbol

    ticker = normalize_symbol(args.ticker)
    if args.date is not None and not args.intraday:
        print(
            "quote-pipeline: error: --date picks the session of an --intraday chart",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.days is not None and args.intraday:
        print(
            "quote-pipeline: error: --days is for daily charts (--intraday shows one session)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    chart = charts.ticker_chart(
        _engine(args),
        ticker,
        days=args.days or DEFAULT_CHART_SESSIONS,
        intraday=args.intraday,
        day=args.date,
        width_px=args.width,
        height_px=args.height,
    )
    out = Path(args.out or (f"{ticker}-intraday.png" if args.intraday else f"{ticker}.png"))
    _write_chart(out, chart.png)
    size = f"{args.width}x{args.height}, {len(chart.png) / 1000:.1f} kB"
    print(f"wrote {out} ({size}): {chart.span}")
    return 0


def _write_chart(out: Path, png: bytes) -> None:
    from quote_pipeline.charts import ChartError

    try:
        out.write_bytes(png)
    except OSError as exc:
        raise ChartError(f"cannot write {out}: {exc.strerror or exc}") from None


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    # Not create_db_engine's own upgrade: that one always goes to the head.
    engine = create_db_engine(args.database_url, upgrade=False)
    before = current_revision(engine)
    upgrade(engine, args.revision)
    after = current_revision(engine)
    where = display_url(resolve_database_url(args.database_url))
    if before == after:
        print(f"{where}: already at revision {after}")
    else:
        print(f"{where}: upgraded from revision {before or 'none'} to {after}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    engine = create_db_engine(args.database_url, upgrade=False)  # show it as it is
    current, head = current_revision(engine), head_revision()
    if current == head:
        state = "up to date"
    elif current is None and predates_migrations(engine):
        state = "tables made before migrations; `quote-pipeline db upgrade` adopts them"
    elif current is None:
        state = "no schema yet; `quote-pipeline db upgrade` creates it"
    elif current in known_revisions():
        state = "behind the head; run `quote-pipeline db upgrade`"
    else:
        state = "newer than this code: a later version of quote_pipeline migrated it"
    print(f"database: {display_url(resolve_database_url(args.database_url))}")
    print(f"current:  {current or 'none'} ({state})")
    print(f"head:     {head}")
    return 0


# What the demo fetches, shows and charts (tracked ones of these, else the first five).
DEMO_HISTORY_SESSIONS = 126  # about six months: enough for SMA 50 on most of the chart
DEMO_SHOWN = ("AAPL", "MSFT", "NVDA", "JPM", "^GSPC")


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox, seed sample tickers if none, run the quote refresh and six months of
    daily history through the project's definitions (in this process, on a throwaway
    instance), then print stocks and a few daily metrics, and write one candlestick chart."""
    import dagster as dg

    from quote_pipeline.market_calendar import last_closed_session, sessions_between
    from quote_pipeline.sandbox import SandboxConfig, SandboxServer

    database_url = resolve_database_url(args.database_url)
    engine = create_db_engine(database_url)
    if not list_tickers(engine):
        sample = resources.files("quote_pipeline") / "data" / "sample_tickers.csv"
        with resources.as_file(sample) as path:
            added = add_tickers(engine, read_ticker_file(path), now=datetime.now(UTC))
        print(f"seeded {len(added)} sample tickers")
    tracked = list_tickers(engine)
    shown = [t for t in DEMO_SHOWN if t in tracked] or tracked[:5]
    now = datetime.now(UTC)
    # The calendar starts decades ago: there is always a closed session before now.
    last = last_closed_session(now) or now.date()
    sessions = sessions_between(last - timedelta(days=DEMO_HISTORY_SESSIONS * 2), last)
    first = sessions[-DEMO_HISTORY_SESSIONS]
    config = SandboxConfig(latency_ms=args.latency_ms, premium=args.premium)
    with SandboxServer(config) as sandbox:
        environ = {
            "FMP_BASE_URL": sandbox.url,
            "FMP_API_KEY": config.api_key,
            "QUOTE_PIPELINE_DATABASE_URL": database_url,
        }
        # A throwaway instance, in memory: the runs are the demo's, against a sandbox that is
        # gone afterwards; kept in the UI's instance (scripts/dev.sh) they would outlive it.
        # The rows go to the database. Dagster's run log goes to stderr, INFO and above.
        with (
            _environ(environ),
            tempfile.TemporaryDirectory(prefix="quote-pipeline-demo-") as home,
            dg.DagsterInstance.ephemeral(tempdir=home) as instance,
        ):
            from quote_pipeline.definitions import build_definitions

            defs = build_definitions()
            print(
                f"sandbox at {sandbox.url}; running in this process, on a throwaway instance:\n"
                f"  refresh_quotes, daily_prices_job over {DEMO_HISTORY_SESSIONS} sessions "
                f"({first} to {last}),\n"
                "  refresh_corporate_actions, then daily_prices_adjusted and daily_metrics"
            )
            range_tags = {
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            }
            derived = [dg.AssetKey("daily_prices_adjusted"), dg.AssetKey("daily_metrics")]
            # daily_metrics charts only the ticker charted below (12 charts cost seconds).
            watchlist = {"ops": {"daily_metrics": {"config": {"watchlist": shown[:1]}}}}
            # Named in the run config, the console logger is the project's (INFO and above);
            # unnamed, an in-process run gets Dagster's default one, every DEBUG event too.
            console = {"loggers": {"console": {}}}
            runs: list[tuple[str, Any, dict[str, Any]]] = [
                ("refresh_quotes", defs.resolve_job_def("refresh_quotes"), {}),
                (
                    "daily_prices_job",
                    defs.resolve_job_def("daily_prices_job"),
                    {"tags": range_tags},
                ),
                (
                    "refresh_corporate_actions",
                    defs.resolve_job_def("refresh_corporate_actions"),
                    {},
                ),
                (
                    "daily_prices_adjusted and daily_metrics",
                    defs.resolve_implicit_global_asset_job_def(),
                    {"asset_selection": derived, "run_config": {**console, **watchlist}},
                ),
            ]
            for name, job, options in runs:
                result = job.execute_in_process(
                    instance=instance, raise_on_error=False, **{"run_config": console, **options}
                )
                if not result.success:
                    print(f"{name} failed; see the log above", file=sys.stderr)
                    return EXIT_ERROR
    print_stocks(database_url)
    print_latest_metrics(engine, shown)
    return write_demo_chart(engine, shown[0], database_url)


class _environ:
    """Set environment variables for a ``with`` block, then put back what was there."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def print_latest_metrics(engine: sa.Engine, tickers: Sequence[str]) -> None:
    """Each ticker's latest daily_metrics row, a few columns, rounded for reading."""
    from quote_pipeline.storage.metrics import read_latest_metrics

    latest = read_latest_metrics(engine, tickers)
    print(f"daily_metrics of {len(latest)} tickers, latest session:")
    if latest.empty:
        return

    def fmt(value: float, spec: str, unit: str = "") -> str:
        return "" if value != value else format(value, spec) + unit  # NaN: too few sessions

    frame = pd.DataFrame(
        [
            {
                "ticker": row.ticker,
                "date": row.date.isoformat(),
                "return_1d": fmt(100 * row.return_1d, "+.2f", " %"),
                "sma_20": fmt(row.sma_20, ",.2f"),
                "sma_50": fmt(row.sma_50, ",.2f"),
                "rsi_14": fmt(row.rsi_14, ".1f"),
                "volatility_20": fmt(100 * row.volatility_20, ".1f", " %"),
                "drawdown": fmt(100 * row.drawdown, ".1f", " %"),
            }
            for row in latest.itertuples()
        ]
    )
    print(frame.to_string(index=False))


def demo_chart_path(database_url: str, ticker: str) -> Path:
    """``TICKER-chart.png`` next to a SQLite database file, else in the data directory."""
    from quote_pipeline.storage.database import data_dir

    url = sa.engine.make_url(database_url)
    is_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    folder = Path(str(url.database)).resolve().parent if is_file else data_dir()
    return folder / f"{ticker.replace('^', '')}-chart.png"


def write_demo_chart(engine: sa.Engine, ticker: str, database_url: str) -> int:
    from quote_pipeline import charts

    chart = charts.ticker_chart(engine, ticker, days=DEFAULT_CHART_SESSIONS)
    out = demo_chart_path(database_url, ticker)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_chart(out, chart.png)
    try:
        shown = out.relative_to(Path.cwd())
    except ValueError:
        shown = out
    size = f"640x400, {len(chart.png) / 1000:.1f} kB"
    print(f"wrote {shown} ({ticker} candlestick chart, {size}): {chart.span}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Start a Celery worker for the celery executor (replaces this process)."""
    from quote_pipeline.celery_worker import WorkerError, exec_worker, parse_queues, prepare_worker

    try:
        launch = prepare_worker(
            queues=parse_queues(args.queues),
            concurrency=args.concurrency,
            name=args.name,
            loglevel=args.loglevel,
            database_url=args.database_url,
        )
    except WorkerError as exc:
        print(f"quote-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(launch.description, file=sys.stderr)
    if args.dry_run:
        print(" ".join(launch.argv))
        print(f"config: {launch.yaml_path} -> {launch.config_dir}")
        return 0
    exec_worker(launch)
    return 0  # pragma: no cover - exec_worker does not return


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quote-pipeline", description=__doc__)
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $QUOTE_PIPELINE_DATABASE_URL, else ./data/*.db)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    tickers = commands.add_parser("tickers", help="manage the tracked tickers")
    tickers_commands = tickers.add_subparsers(dest="tickers_command", required=True)
    add = tickers_commands.add_parser("add", help="track symbols (all or none)")
    add.add_argument("symbols", nargs="+", metavar="SYM")
    add.set_defaults(func=cmd_tickers_add)
    remove = tickers_commands.add_parser("remove", help="stop tracking symbols")
    remove.add_argument("symbols", nargs="+", metavar="SYM")
    remove.set_defaults(func=cmd_tickers_remove)
    tickers_commands.add_parser("list", help="print the tracked symbols").set_defaults(
        func=cmd_tickers_list
    )
    import_ = tickers_commands.add_parser(
        "import", help="track the symbols of a CSV (`ticker` column) or a one-per-line file"
    )
    import_.add_argument("file")
    import_.set_defaults(func=cmd_tickers_import)

    stocks = commands.add_parser("stocks", help="print the stocks table")
    stocks.add_argument("--limit", type=int, default=None)
    stocks.set_defaults(func=cmd_stocks)

    news = commands.add_parser(
        "news", help="print a ticker's stored headlines with their sentiment scores"
    )
    news.add_argument("ticker", metavar="TICKER")
    news.add_argument("--days", type=int, default=7, help="how far back (default 7)")
    news.set_defaults(func=cmd_news)

    chart = commands.add_parser(
        "chart", help="write a candlestick PNG of a ticker's stored prices (no API call)"
    )
    chart.add_argument("ticker", metavar="TICKER")
    chart.add_argument(
        "--days",
        type=_positive_int,
        default=None,
        help=f"daily chart: the last DAYS stored sessions (default {DEFAULT_CHART_SESSIONS})",
    )
    chart.add_argument(
        "--out", default=None, help="PNG path (default: ./TICKER.png, ./TICKER-intraday.png)"
    )
    chart.add_argument(
        "--intraday", action="store_true", help="one session's 5-minute bars, New York time"
    )
    chart.add_argument(
        "--date",
        type=_iso_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="with --intraday: the New York session (default: the latest stored)",
    )
    chart.add_argument("--width", type=_positive_int, default=640, help="pixels (default 640)")
    chart.add_argument("--height", type=_positive_int, default=400, help="pixels (default 400)")
    chart.set_defaults(func=cmd_chart)

    db = commands.add_parser("db", help="the database schema: its revision and upgrades")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser(
        "upgrade", help="migrate the schema (every other command also upgrades to the head)"
    )
    db_upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    db_commands.add_parser(
        "current", help="print the database's revision and this code's head"
    ).set_defaults(func=cmd_db_current)

    demo = commands.add_parser(
        "demo",
        help="against a local sandbox API: refresh quotes, fetch six months of daily history, "
        "print stocks and daily metrics, write one chart",
    )
    demo.add_argument("--latency-ms", type=float, default=50.0)
    demo.add_argument("--premium", action="store_true", help="let the sandbox serve batches")
    demo.set_defaults(func=cmd_demo)

    worker = commands.add_parser(
        "worker",
        help="run a Celery worker for runs on the celery executor (QUOTE_PIPELINE_EXECUTOR="
        "celery): needs DAGSTER_HOME (the production instance) and the deployment's variables",
    )
    worker.add_argument(
        "--queues",
        default=None,
        metavar="Q[,Q]",
        help="queues to take steps from, at most four (default: fmp_api,dagster; fmp_api: "
        "steps calling the API, dagster: the others)",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="steps executed at once (default: one per CPU)",
    )
    worker.add_argument(
        "--name", default=None, help="node name, unique per host (default: a random one)"
    )
    worker.add_argument("--loglevel", default="INFO", help="Celery's log level (default INFO)")
    worker.add_argument(
        "--dry-run", action="store_true", help="write the config, print the command, start nothing"
    )
    worker.set_defaults(func=cmd_worker)

    add_sandbox_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (InvalidSymbolError, TickerFileError) as exc:
        print(f"quote-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUrlError as exc:
        print(f"quote-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChartError as exc:
        print(f"quote-pipeline: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (sa.exc.OperationalError, SchemaMigrationError) as exc:
        url = resolve_database_url(args.database_url)
        print(
            f"quote-pipeline: error: database {display_url(url)}: {database_error_line(exc, url)}",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
