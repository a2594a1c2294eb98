"""examples/notebook.ipynb runs headlessly (nbclient, the venv's ipykernel) against a PostgreSQL
database filled by a real refresh and backfill, and shows what it promises: the chart, the
ticker's latest metrics and its headlines."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from quote_pipeline_tests.support.filled_database import filled_database

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebook.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _outputs(notebook: Any, output_type: str) -> list[Any]:
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == output_type
    ]


def test_the_notebook_is_stored_clean() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id


def test_the_python3_kernel_is_this_python() -> None:
    """nbclient starts the `python3` kernelspec; its command must be the interpreter running
    the tests (the venv's, with quote_pipeline installed), not another Python on the PATH."""
    command = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert command[0] == sys.executable
    assert command[1:3] == ["-m", "ipykernel_launcher"]


@pytest.mark.postgres
def test_the_notebook_runs_against_a_filled_database(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Appended to this run's copy only: which Python the kernel really was.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel:', sys.executable)"))
    with filled_database(postgres_url) as filled:
        ticker = "NVDA"  # not the default: the environment variable is honoured
        assert ticker in filled.tickers
        monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", filled.url)  # the kernel inherits it
        monkeypatch.setenv("QUOTE_PIPELINE_NOTEBOOK_TICKER", ticker.lower())
        NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=120,
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},
        ).execute()

    assert _outputs(notebook, "error") == []
    printed = "".join(output.text for output in _outputs(notebook, "stream"))
    assert f"ticker: {ticker}\n" in printed
    assert "database: postgresql://" in printed
    assert f"{ticker} latest metrics, session {filled.last_session:%Y-%m-%d}:" in printed
    assert "sma_50" in printed and "rsi_14" in printed
    assert "last adjusted close:" in printed and "(Decimal)" in printed
    assert f"headline(s) about {ticker} in the last 7 days" in printed
    assert f"kernel: {sys.executable}\n" in printed

    images = [
        output.data["image/png"]
        for output in _outputs(notebook, "display_data")
        if "image/png" in output.data
    ]
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(PNG_SIGNATURE)
    # The headlines table is the last cell's rich output.
    results = _outputs(notebook, "execute_result")
    assert any("sentiment_label" in output.data.get("text/html", "") for output in results)
