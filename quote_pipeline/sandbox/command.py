"""The ``quote-pipeline sandbox`` sub-command: serve the FMP imitation in the foreground."""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from quote_pipeline.sandbox.corporate import dividend_spec, split_spec
from quote_pipeline.sandbox.server import (
    DEFAULT_MASSIVE_KEY,
    GATED_ENDPOINTS,
    MASSIVE_PLANS,
    FaultConfig,
    SandboxConfig,
    SandboxServer,
    check_clock,
    check_loopback,
    default_market_universe,
    synthetic_symbols,
)

DESCRIPTION = (
    "Serve an FMP-compatible API on a loopback port with deterministic data and optional "
    "faults. Prints 'FMP sandbox listening on URL' once bound; stops on SIGINT/SIGTERM. "
    "Endpoints under /stable: quote-short, batch-quote-short, profile, splits, dividends, "
    "historical-price-eod/{full,non-split-adjusted,dividend-adjusted}, historical-chart/5min, "
    "news/stock, news/stock-latest. Daily history is consistent with the splits and "
    "dividends: 'full' is split-adjusted as of the sandbox clock, so moving the clock past an "
    "ex-date re-bases earlier days. "
    "The same port speaks Massive's (Polygon.io's) dialect too, with its own key "
    "(--massive-key, as 'Authorization: Bearer KEY' or apiKey=) and plan (--massive-plan): "
    "/v2/snapshot/locale/us/markets/stocks/tickers, "
    "/v2/aggs/grouped/locale/us/market/stocks/{date} (every symbol of --universe), "
    "/v2/aggs/ticker/{T}/range/1/day/{from}/{to} and /v2/aggs/ticker/{T}/prev, priced like "
    "the FMP endpoints. "
    "XBIGPRICE and XDUSTPRICE are priced at the limits of exactness (15 integer digits with "
    "8 decimals; 0.00001234) and never have splits or dividends."
)


def _symbols(raw: str) -> list[str]:
    return [s.strip().upper() for s in raw.split(",") if s.strip()]


def _rate(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {raw}")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {raw}")
    return value


def _clock(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {raw!r}") from None
    try:
        check_clock(moment)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return moment


def _day(raw: str, what: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {raw!r} is not a YYYY-MM-DD date") from None


def _decimal(raw: str, what: str) -> Decimal:
    try:
        return Decimal(raw)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{what} {raw!r} is not a number") from None


def _split(raw: str) -> tuple[str, date, Decimal, Decimal]:
    """``SYM:YYYY-MM-DD:NUM:DEN``, e.g. AAPL:2020-08-31:4:1 or GE:2021-08-02:1:8."""
    parts = raw.split(":")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected SYM:YYYY-MM-DD:NUM:DEN, got {raw!r}")
    symbol, day, numerator, denominator = parts
    try:
        return split_spec(
            symbol,
            _day(day, "ex-date"),
            _decimal(numerator, "numerator"),
            _decimal(denominator, "denominator"),
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dividend(raw: str) -> tuple[str, date, Decimal]:
    """``SYM:YYYY-MM-DD:AMOUNT``, e.g. KO:2026-09-15:0.51."""
    parts = raw.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected SYM:YYYY-MM-DD:AMOUNT, got {raw!r}")
    symbol, day, amount = parts
    try:
        return dividend_spec(symbol, _day(day, "ex-date"), _decimal(amount, "amount"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _universe_file(raw: str) -> list[str]:
    """The symbols of a ticker list: what ``quote-pipeline tickers import`` reads (one symbol a
    line, or a CSV with a ``ticker`` column), or a CSV with a ``symbol`` column."""
    from quote_pipeline.tickers_file import TickerFileError, read_ticker_file

    path = Path(raw)
    try:
        lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc}") from None
    header = next(csv.reader(lines[:1]), [])
    columns = {name.strip().lower(): name for name in header}
    if "symbol" in columns and "ticker" not in columns:
        column = columns["symbol"]
        return [v.strip() for row in csv.DictReader(lines) if (v := row.get(column) or "").strip()]
    try:
        return read_ticker_file(path)
    except TickerFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gate(raw: str) -> tuple[str, list[str]]:
    """``ENDPOINT:SYM[,SYM]``, e.g. dividends:PG,KO."""
    endpoint, sep, symbols = raw.partition(":")
    endpoint = endpoint.strip().lower()
    if not sep or not _symbols(symbols):
        raise argparse.ArgumentTypeError(f"expected ENDPOINT:SYM[,SYM], got {raw!r}")
    if endpoint not in GATED_ENDPOINTS:
        raise argparse.ArgumentTypeError(
            f"unknown endpoint {endpoint!r}; use one of {', '.join(GATED_ENDPOINTS)}"
        )
    return endpoint, _symbols(symbols)


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser``."""
    parser.add_argument("--port", type=_non_negative_int, default=8765, help="0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument(
        "--premium", action="store_true", help="allow batch-quote-short (and the news endpoints)"
    )
    parser.add_argument(
        "--news-plan",
        action="store_true",
        help=(
            "allow /stable/news/stock and /stable/news/stock-latest (FMP's Starter plan); "
            "without it or --premium they answer 402"
        ),
    )
    parser.add_argument("--api-key", default="sandbox-key", help="the accepted apikey")
    parser.add_argument(
        "--massive-key",
        default=DEFAULT_MASSIVE_KEY,
        help="the key Massive's paths (/v2/...) accept, as Bearer header or apiKey=",
    )
    parser.add_argument(
        "--massive-plan",
        choices=MASSIVE_PLANS,
        default="developer",
        help=(
            "Massive plan: basic refuses the snapshot and today's bars before the close "
            "(add --calls-per-minute 5 for its rate), starter snapshots are DELAYED without "
            "lastTrade, developer has lastTrade, advanced lastQuote too (default developer)"
        ),
    )
    parser.add_argument(
        "--universe",
        type=_universe_file,
        default=None,
        metavar="FILE",
        help=(
            "the market universe of Massive's grouped daily and full snapshot: one symbol a "
            "line, or a CSV with a ticker (or symbol) column. Default: the sample tickers"
        ),
    )
    parser.add_argument(
        "--universe-size",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help=(
            "add N synthetic symbols (AAAA, AAAB, ... as benchmarks/run.py names them) to the "
            "market universe"
        ),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for data and fault draws")
    parser.add_argument("--server-error-rate", type=_rate, default=0.0, help="share answered 5xx")
    parser.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered 429")
    parser.add_argument("--calls-per-minute", type=_non_negative_int, default=None)
    parser.add_argument("--daily-quota", type=_non_negative_int, default=None)
    parser.add_argument(
        "--limit-reach-in-200", action="store_true", help="send 'Limit Reach' with status 200"
    )
    for name, help_text in (
        ("unknown", "answer [] (absent from batches)"),
        ("error-body", "answer 200 with an Error Message"),
        ("malformed", "answer truncated JSON"),
        ("bad-shape", "answer rows with wrong types or missing fields"),
        ("hang", "wait --hang-seconds before answering"),
        ("plan-gated", "answer 402 Premium Query Parameter (omitted from batches)"),
        ("server-error", "answer 5xx on every request"),
    ):
        parser.add_argument(
            f"--{name}-symbols",
            type=_symbols,
            action="extend",
            default=[],
            metavar="A,B",
            help=f"symbols to {help_text}",
        )
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument(
        "--inactive",
        type=_symbols,
        action="extend",
        default=[],
        metavar="SYM,SYM",
        help="symbols whose /stable/profile says isActivelyTrading: false",
    )
    parser.add_argument(
        "--gate",
        type=_gate,
        action="append",
        default=[],
        metavar="ENDPOINT:SYM[,SYM]",
        help=(
            "answer 402 (plain text, as FMP's free plan does) for these symbols on that "
            f"endpoint only; repeatable. ENDPOINT is one of {', '.join(GATED_ENDPOINTS)} "
            "('eod' is all three daily variants)"
        ),
    )
    parser.add_argument(
        "--split",
        type=_split,
        action="append",
        default=[],
        metavar="SYM:YYYY-MM-DD:NUM:DEN",
        help=(
            "inject a split (4:1 forward, 1:10 reverse); repeatable. A symbol given any "
            "--split has exactly those splits instead of its generated ones. Listed by "
            "/stable/splits, and applied by 'full', once the clock reaches the ex-date"
        ),
    )
    parser.add_argument(
        "--dividend",
        type=_dividend,
        action="append",
        default=[],
        metavar="SYM:YYYY-MM-DD:AMOUNT",
        help=(
            "inject a dividend (ex-date, amount per share as traded then); repeatable. A "
            "symbol given any --dividend has exactly those instead of its generated ones. "
            "Listed from 14 days before the ex-date (its declaration)"
        ),
    )
    parser.add_argument(
        "--clock",
        type=_clock,
        default=None,
        metavar="ISO8601",
        help=(
            "freeze the sandbox's 'now' (forming 5-minute bar, end of daily history, which "
            "splits and dividends are known and adjusted for, quota day) "
            "at this time with offset, e.g. 2026-11-24T15:42:30-05:00; "
            "POST /_sandbox/clock changes it later. Default: the real time"
        ),
    )


def add_sandbox_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``sandbox`` sub-command on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "sandbox", help="run a local FMP-compatible API server", description=DESCRIPTION
    )
    add_sandbox_arguments(parser)
    parser.set_defaults(func=run_sandbox)
    return parser


def _merged_gates(gates: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Repeated --gate options for one endpoint add up."""
    merged: dict[str, list[str]] = {}
    for endpoint, symbols in gates:
        merged.setdefault(endpoint, []).extend(symbols)
    return merged


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Build the SandboxConfig the parsed options describe."""
    faults = FaultConfig(
        server_error_rate=args.server_error_rate,
        rate_limit_rate=args.rate_limit_rate,
        calls_per_minute=args.calls_per_minute,
        daily_quota=args.daily_quota,
        limit_reach_in_200=args.limit_reach_in_200,
        unknown_symbols=args.unknown_symbols,
        error_body_symbols=args.error_body_symbols,
        malformed_symbols=args.malformed_symbols,
        bad_shape_symbols=args.bad_shape_symbols,
        hang_symbols=args.hang_symbols,
        hang_seconds=args.hang_seconds,
        plan_gated_symbols=args.plan_gated_symbols,
        server_error_symbols=args.server_error_symbols,
        inactive_symbols=args.inactive,
        endpoint_gated_symbols=_merged_gates(args.gate),
    )
    return SandboxConfig(
        api_key=args.api_key,
        premium=args.premium,
        news_plan=args.news_plan,
        seed=args.seed,
        latency_ms=args.latency_ms,
        faults=faults,
        clock=args.clock,
        splits=tuple(args.split),
        dividends=tuple(args.dividend),
        massive_api_key=args.massive_key,
        massive_plan=args.massive_plan,
        market_universe=(
            *(default_market_universe() if args.universe is None else args.universe),
            *synthetic_symbols(args.universe_size),
        ),
    )


def run_sandbox(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    try:
        host = check_loopback(args.host)
        config = config_from_args(args)
    except ValueError as exc:
        print(f"quote-pipeline sandbox: {exc}", file=sys.stderr)
        return 2
    server = SandboxServer(config, host=host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(
            f"quote-pipeline sandbox: cannot listen on {host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"FMP sandbox listening on {server.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m quote_pipeline.sandbox [options]``."""
    parser = argparse.ArgumentParser(prog="quote-pipeline sandbox", description=DESCRIPTION)
    add_sandbox_arguments(parser)
    return run_sandbox(parser.parse_args(argv))
