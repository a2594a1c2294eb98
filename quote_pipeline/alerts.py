"""Failure alerts: short messages to a Slack-compatible webhook, with no secret in them.

Plain Python (no Dagster): the sensors in ``defs/alerts`` gather what failed and call these.
A message is ``{"text": "..."}`` POSTed as JSON: a Slack incoming-webhook URL takes it as is
(so do Mattermost, Rocket.Chat and Discord's ``…/slack`` webhook endpoint).

Settings, read when a message is about to be sent (never at load):

- ``QUOTE_PIPELINE_ALERT_WEBHOOK_URL`` — where to POST; unset or empty means alerts are off.
  The URL itself is a secret (a Slack webhook's path is its token): it is never logged or
  shown, only its host.
- ``QUOTE_PIPELINE_UI_URL`` — the Dagster UI's base URL for the run link
  (default ``http://127.0.0.1:3000``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from quote_pipeline.fmp.errors import redact

WEBHOOK_URL_ENV = "QUOTE_PIPELINE_ALERT_WEBHOOK_URL"
UI_URL_ENV = "QUOTE_PIPELINE_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"
# Connecting, then reading the answer: a tick posts a few alerts inside Dagster's 60 s limit.
POST_TIMEOUT_SECONDS = (5.0, 10.0)
REASON_LIMIT = 300  # characters of the reason line
MAX_LISTED = 5  # steps or checks named before "… and N more"

# An environment variable whose name says it holds a secret: its value is masked wherever it
# appears in a message (FMP_API_KEY, DAGSTER_PG_PASSWORD, SLACK_TOKEN …).
_SECRET_ENV_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
# URLs whose password or whole value is a secret, by the variable that holds them.
_URL_ENV = (
    WEBHOOK_URL_ENV,
    "QUOTE_PIPELINE_DATABASE_URL",
    "QUOTE_PIPELINE_CELERY_BROKER",
    "QUOTE_PIPELINE_CELERY_BACKEND",
    "DAGSTER_PG_URL",
)
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)([^\s@/]+)(@)", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"\b((?:api[_-]?key|access[_-]?token|token|password|passwd|pwd|secret|client[_-]?secret)"
    r"[\"']?\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^&\s'\"<>),;]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class AlertDeliveryError(RuntimeError):
    """The webhook did not take the message. The text names the webhook's host, never its URL."""


class AlertRejectedError(AlertDeliveryError):
    """The webhook refused this message for good (a 4xx other than 408 and 429): sending it
    again would be refused again, and would hold back every later alert."""


def webhook_url(env: Mapping[str, str] | None = None) -> str | None:
    """The webhook to POST to, or None when alerts are off (the variable unset or empty)."""
    value = (os.environ if env is None else env).get(WEBHOOK_URL_ENV, "").strip()
    return value or None


def ui_url(env: Mapping[str, str] | None = None) -> str:
    """The Dagster UI's base URL, without a trailing slash."""
    value = (os.environ if env is None else env).get(UI_URL_ENV, "").strip()
    return (value or DEFAULT_UI_URL).rstrip("/")


def run_link(run_id: str, base_url: str | None = None) -> str:
    """The run's page in the Dagster UI."""
    return f"{(base_url or ui_url()).rstrip('/')}/runs/{run_id}"


def webhook_host(url: str) -> str:
    """What may be said about a webhook: its scheme and host (its path is its token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" if parts.hostname else "the webhook"


def known_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values that must never appear in a message: those of variables named like secrets, the
    webhook URL and its path, and the passwords of the configured URLs. Longest first."""
    env = os.environ if env is None else env
    secrets: set[str] = set()
    for name, value in env.items():
        if _SECRET_ENV_NAME.search(name) and len(value.strip()) >= _MIN_SECRET_LENGTH:
            secrets.add(value.strip())
    for name in _URL_ENV:
        value = env.get(name, "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.password and len(parts.password) >= _MIN_SECRET_LENGTH:
            secrets.add(parts.password)
        if name == WEBHOOK_URL_ENV:
            secrets.add(value)
            if len(parts.path.strip("/")) >= _MIN_SECRET_LENGTH:
                secrets.add(parts.path)
    return sorted(secrets, key=len, reverse=True)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with API keys (``apikey=…``, the project's :func:`redact`), ``password=`` /
    ``token=`` values, bearer tokens, URL passwords and every one of ``secrets`` masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = redact(text)
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    text = _SECRET_PARAM.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)


def first_line(text: str | None, limit: int = REASON_LIMIT) -> str:
    """The first non-blank line of ``text``, shortened to ``limit`` characters."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def error_reason(cls_name: str | None, message: str | None) -> str:
    """An exception's message as one line, its class named without its module path
    (``quote_pipeline.fmp.errors.FMPAuthError: …`` → ``FMPAuthError: …``)."""
    line = first_line(message, limit=10_000)
    if cls_name:
        line = re.sub(rf"^[\w.]*\b{re.escape(cls_name)}: ", f"{cls_name}: ", line)
    return first_line(line)


def listed(names: Sequence[str]) -> str:
    """``a, b, c`` — at most :data:`MAX_LISTED` names, then how many more."""
    shown = ", ".join(names[:MAX_LISTED])
    more = len(names) - MAX_LISTED
    return f"{shown} … and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class FailedCheck:
    """One failed asset-check evaluation."""

    asset: str
    check: str
    description: str = ""

    @property
    def label(self) -> str:
        return f"{self.check} on {self.asset}"


@dataclass(frozen=True)
class RunFailure:
    """A failed run: what the alert says about it."""

    job: str
    run_id: str
    steps: Sequence[str]
    reason: str
    failed_checks: Sequence[FailedCheck] = field(default_factory=tuple)
    partition: str | None = None

    def text(self, base_url: str | None = None, secrets: Iterable[str] | None = None) -> str:
        lines = [
            f"Dagster run failed: {self.job}"
            + (f" (partition {self.partition})" if self.partition else ""),
            f"Run: {self.run_id}",
            f"Failed step{'s' if len(self.steps) > 1 else ''}: "
            + (listed(self.steps) if self.steps else "none (the run failed outside a step)"),
            f"Reason: {first_line(self.reason) or 'not recorded'}",
        ]
        if self.failed_checks:
            lines.append(f"Failed checks: {listed([c.label for c in self.failed_checks])}")
        lines.append(f"Open: {run_link(self.run_id, base_url)}")
        return _safe("\n".join(lines), secrets)


@dataclass(frozen=True)
class CheckFailures:
    """Failed blocking checks of one run that did not fail (else the run's alert names them)."""

    job: str
    run_id: str
    checks: Sequence[FailedCheck]

    def text(self, base_url: str | None = None, secrets: Iterable[str] | None = None) -> str:
        plural = "s" if len(self.checks) > 1 else ""
        lines = [
            f"Dagster asset check{plural} failed: {listed([c.label for c in self.checks])}",
            f"Run: {self.run_id} ({self.job}, the run itself succeeded)",
        ]
        for check in self.checks[:MAX_LISTED]:
            lines.append(f"{check.label}: {first_line(check.description) or 'no description'}")
        lines.append(f"Open: {run_link(self.run_id, base_url)}")
        return _safe("\n".join(lines), secrets)


def _safe(text: str, secrets: Iterable[str] | None) -> str:
    return redact_secrets(text, known_secrets() if secrets is None else secrets)


def slack_payload(text: str) -> dict[str, str]:
    """Slack-compatible JSON: the message as ``text`` (rendered as plain text, links live)."""
    return {"text": text}


def post_alert(
    url: str,
    text: str,
    *,
    timeout: float | tuple[float, float] = POST_TIMEOUT_SECONDS,
    session: requests.Session | None = None,
) -> None:
    """POST ``text`` to the webhook; :class:`AlertDeliveryError` unless it answers 2xx."""
    sender = session or requests
    host = webhook_host(url)
    try:
        response = sender.post(url, json=slack_payload(text), timeout=timeout)
    except requests.RequestException as exc:
        # Not str(exc): requests quotes the URL, whose path is the webhook's token.
        raise AlertDeliveryError(f"{host} unreachable ({type(exc).__name__})") from None
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise AlertRejectedError(f"{host} refused the message: HTTP {response.status_code}")
    if not 200 <= response.status_code < 300:
        raise AlertDeliveryError(f"{host} answered HTTP {response.status_code}")
