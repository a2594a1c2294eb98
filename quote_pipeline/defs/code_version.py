"""The code location's version: which code a job page, a run or a schedule tick came from."""

import functools
import os
import subprocess
from importlib import metadata
from pathlib import Path

CODE_VERSION_ENV = "QUOTE_PIPELINE_CODE_VERSION"
CODE_VERSION_TAG = "quote_pipeline/code_version"


@functools.cache
def code_version() -> str:
    """``$QUOTE_PIPELINE_CODE_VERSION`` if set (a deploy stamps its release or commit),
    else the package version, plus ``+g<commit>`` when the code runs from a git checkout.

    The package version alone rarely changes, so it would not tell two deploys apart; the
    commit does, and an installed wheel without `.git` simply goes without it.
    """
    if explicit := os.environ.get(CODE_VERSION_ENV, "").strip():
        return explicit
    try:
        version = metadata.version("quote_pipeline")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    commit = _git_commit(Path(__file__).resolve().parent)
    return f"{version}+g{commit}" if commit else version


def _git_commit(directory: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
