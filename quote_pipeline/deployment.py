"""The project's Dagster instance wiring: the run coordinator dagster.yaml names, and the local
instance scripts/dev.sh writes from dagster.yaml.

``python -m quote_pipeline.deployment dev-instance HOME`` writes ``HOME/dagster.yaml``: the
project's dagster.yaml without its ``storage`` block, so a local instance queues, pools and
monitors runs as production does, its storage in SQLite under HOME.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import yaml

from quote_pipeline.run_policy import run_tags_for_assets

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"

DEV_INSTANCE_HEADER = """\
# Written from the project's dagster.yaml by scripts/dev.sh at every start: edit that file,
# not this one. The same instance (run queue, pools, run monitoring, telemetry, nux) without
# its `storage` block, so runs, events and schedules are kept in SQLite in this directory.
"""


def dev_instance_config(production_yaml_text: str) -> str:
    """The local instance's dagster.yaml: ``production_yaml_text`` without ``storage``.

    Only the storage differs from production: without the block Dagster keeps runs, event
    logs and schedules in SQLite under DAGSTER_HOME, and needs no DAGSTER_PG_* variables.
    The production file's comments are not carried over; the header points to them.
    """
    config = yaml.safe_load(production_yaml_text)
    if not isinstance(config, dict):
        raise ValueError("the production dagster.yaml is not a mapping of settings")
    config.pop("storage", None)
    return DEV_INSTANCE_HEADER + yaml.safe_dump(config, sort_keys=False)


def write_dev_instance(home: Path, production: Path = PROJECT_DAGSTER_YAML) -> Path:
    """Write ``home/dagster.yaml`` from ``production`` (see :func:`dev_instance_config`).

    Rewritten whole every time, so a change to the project's file reaches the local instance
    at the next start; replaced atomically, so a process reading it never sees half a file.
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    text = dev_instance_config(production.read_text())
    with tempfile.NamedTemporaryFile("w", dir=home, prefix=".dagster.yaml.", delete=False) as out:
        out.write(text)
    os.replace(out.name, target)
    return target


def policy_tags_missing(run: dg.DagsterRun) -> dict[str, str]:
    """The run-policy tags (quote_pipeline/run_policy.py) that ``run`` does not have yet.

    Read from the assets the run materializes. A run without one gets none: a named job
    launched whole carries its own definition tags, and a run of checks alone (the freshness
    check from an asset's Checks tab) reads the database, calls no API and must not queue
    behind a refresh. A tag the run already has, from its job or its launcher, is kept.
    """
    wanted = run_tags_for_assets([key.path for key in run.asset_selection or ()])
    return {key: value for key, value in wanted.items() if key not in run.tags}


class JobTagsRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's run queue, which first gives every run of the pipeline's assets its job's tags.

    Backfills from an asset's Partitions tab and materializations from the asset graph run
    Dagster's hidden asset job, which has no tags: without the job tag the one-run-per-job
    queue limit would not see them, without ``dagster/max_runtime`` run monitoring would
    allow them 6 hours. Every launch that queues (the UI, GraphQL, schedules, sensors, the
    backfill daemon) calls :meth:`submit_run`, so the tags are there before the queue daemon
    first looks at the run. The code version tag is the one of the quote_pipeline installed
    where this coordinator runs (the webserver, the daemon): this project runs them from the
    same checkout as the code location.

    Configured exactly as ``QueuedRunCoordinator`` (it inherits ``config_type`` and
    ``from_config_value``), and still one for Dagster, so dagster.yaml's ``concurrency:``
    block and the queue daemon apply to it unchanged.
    """

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        """Add the missing policy tags and the run's pool limits, then enqueue the run."""
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED:
            missing = policy_tags_missing(run)
            if missing:
                self._instance.add_run_tags(run.run_id, missing)
                run = self._instance.get_run_by_id(run.run_id) or run
                context = context._replace(dagster_run=run)
            self._initialize_pool_limits(run)
        return super().submit_run(context)

    def _initialize_pool_limits(self, run: dg.DagsterRun) -> None:
        """Give each pool ``run`` uses the default limit if it has none stored yet.

        The queue daemon reads which pools have limits once per pass, before it sets a new
        pool's default: on a fresh instance its first pass would start every queued run of a
        pool nobody used yet, however low the limit. Stored here, the pool is counted from
        the first pass on.
        """
        pools = run.run_op_concurrency.all_pools if run.run_op_concurrency else None
        storage = self._instance.event_log_storage
        if (
            not pools
            or not storage.supports_global_concurrency_limits
            or self._instance.global_op_concurrency_default_limit is None
        ):
            return
        for pool in sorted(set(pools) - storage.get_concurrency_keys()):
            storage.initialize_concurrency_limit_to_default(pool)


def main(argv: Sequence[str] | None = None) -> int:
    """``dev-instance HOME [--production PATH]``: write the local instance's dagster.yaml."""
    parser = argparse.ArgumentParser(prog="python -m quote_pipeline.deployment")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev-instance",
        help="write HOME/dagster.yaml: the project's instance with SQLite storage under HOME",
    )
    dev.add_argument("home", type=Path, help="the local DAGSTER_HOME")
    dev.add_argument(
        "--production",
        type=Path,
        default=PROJECT_DAGSTER_YAML,
        help=f"the production dagster.yaml (default: {PROJECT_DAGSTER_YAML})",
    )
    args = parser.parse_args(argv)
    written = write_dev_instance(args.home.resolve(), args.production)
    print(f"wrote {written} from {args.production}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
