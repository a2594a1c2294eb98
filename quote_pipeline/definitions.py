"""The `quote_pipeline` code location: every asset, check, job and schedule, wired once."""

import dagster as dg

from quote_pipeline.defs.quotes.assets import raw_quotes, stocks, tickers
from quote_pipeline.defs.resources import DatabaseResource, fmp_resource_from_env

refresh_quotes = dg.define_asset_job(
    "refresh_quotes",
    selection=dg.AssetSelection.assets(tickers, raw_quotes, stocks),
    description="Refresh the stocks table: read the tickers, fetch their quotes, write them.",
)


def build_definitions() -> dg.Definitions:
    """All definitions, with resources configured from the environment."""
    return dg.Definitions(
        assets=[tickers, raw_quotes, stocks],
        jobs=[refresh_quotes],
        resources={"fmp": fmp_resource_from_env(), "database": DatabaseResource()},
        # Mapped steps are cheap in process (~15 ms) and ~1 s each as subprocesses; the
        # concurrency that matters is the HTTP inside each step, so run steps in process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
