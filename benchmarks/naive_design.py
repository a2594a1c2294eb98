"""The design we replaced, for comparison only: one mapped step per ticker, multiprocess.

Like the Celery chord (one `call_api(url)` task per ticker), each ticker gets its own
dynamically mapped step, run by Dagster's default multiprocess executor (a process per step),
and rows are written one by one. Not part of the code location; the benchmark runs it at a
small N and extrapolates.
"""

import json
import os
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import requests

from quote_pipeline.models import Quote
from quote_pipeline.storage import create_db_engine, list_tickers, write_quotes


@dg.op(out=dg.DynamicOut(str))
def each_ticker():
    for ticker in list_tickers(create_db_engine()):
        yield dg.DynamicOutput(ticker, mapping_key=ticker.replace(".", "_").replace("^", "_"))


@dg.op
def call_api(ticker: str) -> Quote:
    response = requests.get(
        f"{os.environ['FMP_BASE_URL']}/stable/quote-short",
        params={"symbol": ticker, "apikey": os.environ["FMP_API_KEY"]},
        timeout=10,
    )
    (row,) = json.loads(response.text, parse_float=Decimal)
    now = datetime.now(UTC)
    return Quote(ticker, row["price"], row["volume"], row.get("change"), now, now)


@dg.op
def update_rows(quotes: list[Quote]) -> None:
    engine = create_db_engine()
    for quote in quotes:  # row by row, as the Celery design did
        write_quotes(engine, [quote], written_at=datetime.now(UTC))


@dg.job(executor_def=dg.multiprocess_executor)
def naive_refresh():
    update_rows(each_ticker().map(call_api).collect())


defs = dg.Definitions(jobs=[naive_refresh])
