"""An FMP-compatible sandbox server: deterministic quotes, bars, profiles, splits, dividends
and news plus injectable faults; it also speaks Massive's (Polygon.io's) dialect under /v2."""

from quote_pipeline.sandbox.corporate import (
    company_profile,
    simulated_dividend_adjusted_bars,
    simulated_dividends,
    simulated_raw_daily_bars,
    simulated_splits,
)
from quote_pipeline.sandbox.market import simulated_daily_bars
from quote_pipeline.sandbox.news import article_tone
from quote_pipeline.sandbox.server import (
    API_PATHS,
    GATED_ENDPOINTS,
    MASSIVE_PATHS,
    MASSIVE_PLANS,
    FaultConfig,
    GateMap,
    SandboxConfig,
    SandboxServer,
    build_app,
    default_market_universe,
    json_dumps,
    synthetic_symbols,
)

__all__ = [
    "API_PATHS",
    "GATED_ENDPOINTS",
    "MASSIVE_PATHS",
    "MASSIVE_PLANS",
    "FaultConfig",
    "GateMap",
    "SandboxConfig",
    "SandboxServer",
    "article_tone",
    "build_app",
    "company_profile",
    "default_market_universe",
    "json_dumps",
    "simulated_daily_bars",
    "simulated_dividend_adjusted_bars",
    "simulated_dividends",
    "simulated_raw_daily_bars",
    "simulated_splits",
    "synthetic_symbols",
]
