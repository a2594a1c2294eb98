"""The `quote_pipeline` code location: every domain folder under `defs/`, loaded by dg.

`dagster dev`, `dagster job execute -m quote_pipeline.definitions`, `dg check defs` and the
workspace all load this module; each folder under `defs/` contributes its own definitions
(`defs/<domain>/definitions.py`), and `defs/resources.py` the shared resources.
"""

import gc
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_shared.record import copy

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_definitions(*, resources: Mapping[str, Any] | None = None) -> dg.Definitions:
    """Every definition of the project, configured from the environment.

    ``resources`` replaces resources by key (tests use short timeouts, same code paths).
    """
    loaded = load_defs_folder()
    if resources:
        loaded = copy(loaded, resources={**loaded.resources, **resources})
    return loaded


def load_defs_folder() -> dg.Definitions:
    """``dg.load_from_defs_folder``, less the catalogue of every installed component type
    that it attaches for the UI's component browser: that catalogue (found through package
    entry points) was a tenth of a CLI run's CPU, and this project declares no component."""
    tree = dg.ComponentTree.for_project(path_within_project=PROJECT_ROOT)
    with warnings.catch_warnings():
        # The autoloader's own module loaders are "preview"; the warning is Dagster's, about
        # Dagster's code, and would print at every load.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        folder = tree.build_defs(tree.defs_module_path)
    return dg.Definitions.merge(folder, dg.Definitions(component_tree=tree))


@dg.definitions
def defs() -> dg.Definitions:
    loaded = build_definitions()
    # What is loaded by now (Dagster, pandas, SQLAlchemy, these definitions) lives as long as
    # the process. Freezing it takes those few hundred thousand objects out of every later
    # full collection, and out of the one at interpreter exit (~0.4 s of each CLI run).
    gc.freeze()
    return loaded
