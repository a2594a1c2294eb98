"""Reading ticker lists from files: a CSV with a `ticker` column, or one symbol per line."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd


class TickerFileError(ValueError):
    """The file is not a ticker list this project can read."""


def read_ticker_file(path: Path) -> list[str]:
    """The raw symbols in ``path`` (not yet validated), in file order.

    A file whose first line names a ``ticker`` column is read as CSV (other columns are
    ignored); anything else is one symbol per line, with blank lines and ``#`` comments
    skipped.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TickerFileError(f"cannot read {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    columns = {name.strip().lower(): name for name in header}
    if "ticker" in columns:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        values = frame[columns["ticker"]].str.strip()
        return [v for v in values if v]
    if len(header) > 1:
        raise TickerFileError(f"{path}: a CSV file needs a 'ticker' column (found {header})")
    return [line.strip() for line in lines if not line.lstrip().startswith("#")]
