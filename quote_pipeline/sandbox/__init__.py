"""An FMP-compatible sandbox server: deterministic quotes, bars, profiles, splits, dividends
and news plus injectable faults."""

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
    FaultConfig,
    GateMap,
    SandboxConfig,
    SandboxServer,
    build_app,
    json_dumps,
)

__all__ = [
    "API_PATHS",
    "GATED_ENDPOINTS",
    "FaultConfig",
    "GateMap",
    "SandboxConfig",
    "SandboxServer",
    "article_tone",
    "build_app",
    "company_profile",
    "json_dumps",
    "simulated_daily_bars",
    "simulated_dividend_adjusted_bars",
    "simulated_dividends",
    "simulated_raw_daily_bars",
    "simulated_splits",
]
