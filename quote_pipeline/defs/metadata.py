"""Markdown tables for asset metadata, shared by every domain's assets and checks."""

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from quote_pipeline.models import SymbolFailure


def markdown_table(rows: Sequence[Mapping[str, Any]], *, empty: str = "_no rows_") -> str:
    """``rows`` as a markdown table (the UI renders it), or ``empty`` when there are none."""
    return pd.DataFrame(list(rows)).to_markdown(index=False) if rows else empty


def failures_table(
    failures: Sequence[SymbolFailure], *, limit: int = 50, empty: str = "_no failures_"
) -> str:
    """A markdown table of symbols that failed, and why; the first ``limit`` of them."""
    table = markdown_table(
        [
            {"ticker": f.symbol, "kind": f.kind.value, "message": f.message}
            for f in failures[:limit]
        ],
        empty=empty,
    )
    more = f"\n\n… and {len(failures) - limit} more" if len(failures) > limit else ""
    return table + more
