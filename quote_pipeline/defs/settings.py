"""The deployment's choices, read from the environment in one place.

What shapes the definitions themselves (a partitions start, a schedule's default status, a
step's retry policy) is read when they load (`DeploymentSettings.from_env`). What a run uses
is read when it starts: the API key is an `EnvVar`; the API's host and cap, and the database
URL, are resolved by their resources from the variables named here. Everything else a run
can change is resource or op config, editable in the launchpad.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

import dagster as dg

API_KEY_ENV = "FMP_API_KEY"
BASE_URL_ENV = "FMP_BASE_URL"
CALLS_PER_MINUTE_ENV = "FMP_CALLS_PER_MINUTE"
MASSIVE_API_KEY_ENV = "MASSIVE_API_KEY"
MASSIVE_BASE_URL_ENV = "MASSIVE_BASE_URL"
MASSIVE_CALLS_PER_MINUTE_ENV = "MASSIVE_CALLS_PER_MINUTE"
# Which providers a run asks, in order (primary first), comma-separated: fmp, massive.
QUOTE_PROVIDERS_ENV = "QUOTE_PIPELINE_QUOTE_PROVIDERS"
HISTORY_PROVIDERS_ENV = "QUOTE_PIPELINE_HISTORY_PROVIDERS"
DEFAULT_PROVIDER = "fmp"
FETCH_RETRIES_ENV = "QUOTE_PIPELINE_FETCH_RETRIES"
FETCH_RETRY_DELAY_ENV = "QUOTE_PIPELINE_FETCH_RETRY_DELAY_SECONDS"
HISTORY_START_ENV = "QUOTE_PIPELINE_HISTORY_START"
DEFAULT_HISTORY_START = "2020-01-01"

# Which executor runs a job's steps by default (in_process, or celery: see defs/executors.py).
# It shapes the definitions, so the code server, the run workers and every Celery worker must
# see the same value.
EXECUTOR_ENV = "QUOTE_PIPELINE_EXECUTOR"
EXECUTORS = ("in_process", "celery")

MARKET_HOURS_ONLY_ENV = "QUOTE_PIPELINE_SCHEDULE_MARKET_HOURS_ONLY"
DEFAULT_STATUS_ENV = "QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """How ``refresh_quotes_hourly`` behaves; ``from_env`` reads the deployment's choice."""

    market_hours_only: bool = False
    """Skip ticks outside [open, close + 1 h]: 10:01 to 16:01 New York time on a full day."""
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED
    """STOPPED unless the deployment says otherwise; see ``build_refresh_quotes_schedule``."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ScheduleOptions:
        """Options from ``QUOTE_PIPELINE_SCHEDULE_MARKET_HOURS_ONLY`` (1/0, true/false, yes/no,
        on/off) and ``QUOTE_PIPELINE_SCHEDULE_DEFAULT_STATUS`` (running/stopped)."""
        env = os.environ if environ is None else environ
        hours = env.get(MARKET_HOURS_ONLY_ENV, "").strip().lower()
        if hours not in _TRUE | _FALSE:
            raise ValueError(f"{MARKET_HOURS_ONLY_ENV}={hours!r}: expected 1/0, true/false")
        status = env.get(DEFAULT_STATUS_ENV, "").strip().upper() or "STOPPED"
        if status not in dg.DefaultScheduleStatus.__members__:
            raise ValueError(f"{DEFAULT_STATUS_ENV}={status.lower()!r}: expected running/stopped")
        return cls(
            market_hours_only=hours in _TRUE,
            default_status=dg.DefaultScheduleStatus[status],
        )


_N = TypeVar("_N", int, float)

# A whole fetch step failing (the API unreachable mid-run, the process killed) is retried
# with back-off, jittered so a fleet of retries does not hit a recovering API at once. It is
# never used for one slow symbol: the fetch engine's budget and the retry sensor handle those.
DEFAULT_STEP_RETRIES = 3
DEFAULT_STEP_RETRY_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class DeploymentSettings:
    """Everything the environment decides about the definitions."""

    step_retries: int = DEFAULT_STEP_RETRIES
    step_retry_delay_seconds: float = DEFAULT_STEP_RETRY_DELAY_SECONDS
    history_start: str = DEFAULT_HISTORY_START
    schedules: ScheduleOptions = field(default_factory=ScheduleOptions)
    executor: str = "in_process"
    """The default executor of every job (``QUOTE_PIPELINE_EXECUTOR``); a run may pick the
    other one in the launchpad."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeploymentSettings:
        env = os.environ if environ is None else environ
        return cls(
            step_retries=_number(env, FETCH_RETRIES_ENV, DEFAULT_STEP_RETRIES, int),
            step_retry_delay_seconds=_number(
                env, FETCH_RETRY_DELAY_ENV, DEFAULT_STEP_RETRY_DELAY_SECONDS, float
            ),
            history_start=_iso_date(env, HISTORY_START_ENV, DEFAULT_HISTORY_START),
            schedules=ScheduleOptions.from_env(env),
            executor=_choice(env, EXECUTOR_ENV, EXECUTORS),
        )

    def step_retry_policy(self) -> dg.RetryPolicy:
        """The RetryPolicy of steps that call the API, for a whole step failing."""
        return dg.RetryPolicy(
            max_retries=self.step_retries,
            delay=self.step_retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        )


def calls_per_minute_from_env(
    environ: Mapping[str, str] | None = None, name: str = CALLS_PER_MINUTE_ENV
) -> int | None:
    """A provider's cap (``FMP_CALLS_PER_MINUTE`` by default), read when a run starts
    (unset: no cap)."""
    return _positive_int(os.environ if environ is None else environ, name)


def provider_order(
    configured: list[str] | None,
    env_name: str,
    known: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The providers to ask, primary first: ``configured`` (resource config, editable in
    the launchpad), else the comma-separated variable ``env_name``, else FMP alone.
    Unknown or repeated names are refused in one line."""
    env = os.environ if environ is None else environ
    if configured is not None:
        names, origin = [n.strip().lower() for n in configured], "providers config"
    else:
        raw = env.get(env_name, "")
        names, origin = [n.strip().lower() for n in raw.split(",") if n.strip()], env_name
    names = names or [DEFAULT_PROVIDER]
    unknown = [n for n in names if n not in known]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"{origin}: {', '.join(names)} is not an ordered list of distinct providers "
            f"among {', '.join(known)}"
        )
    return names


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    value = _number(env, name, 0, int)
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, not {raw!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: _N, kind: type[_N]) -> _N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {kind.__name__}, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value among ``choices`` (case and ``-``/``_`` ignored); the first one
    when it is unset."""
    raw = env.get(name, "").strip()
    value = raw.lower().replace("-", "_")
    if not value:
        return choices[0]
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return value


def _iso_date(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ValueError(f"{name} must be a date like 2020-01-01, not {raw!r}") from None
