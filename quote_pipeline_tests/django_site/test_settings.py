"""The site's settings from the environment: every bad value is refused when the settings are
imported, in one line that quotes no secret; ``manage.py`` and ``wsgi.py`` print it as
``quote_site: error: ...`` and exit 1, with no traceback."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quote_pipeline_tests.django_site.support import SECRET_KEY, SITE_DIR

SETTINGS_FILE = SITE_DIR / "quote_site" / "settings.py"
PASSWORD = "hunter2-s3cret"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A good environment (the site's modules importable) for a test to spoil one value."""
    monkeypatch.syspath_prepend(str(SITE_DIR))
    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("QUOTE_PIPELINE_DATABASE_URL", f"sqlite:///{tmp_path / 'q.db'}")
    for name in (
        "DJANGO_DEBUG",
        "QUOTE_PIPELINE_DAGSTER_URL",
        "QUOTE_PIPELINE_DAGSTER_TIMEOUT",
        "QUOTE_SITE_TIME_ZONE",
        "QUOTE_SITE_READ_ONLY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _settings() -> dict[str, Any]:
    """The settings module's names, imported afresh from the current environment."""
    return runpy.run_path(str(SETTINGS_FILE))


BAD = {
    "a port that is not a number": (
        "QUOTE_PIPELINE_DATABASE_URL",
        f"postgresql://u:{PASSWORD}@db.example:abc/quotes",
        "QUOTE_PIPELINE_DATABASE_URL is not a usable database URL (check its form and port)",
    ),
    "a port out of range": (
        "QUOTE_PIPELINE_DATABASE_URL",
        f"postgresql://u:{PASSWORD}@db.example:70000/quotes",
        "QUOTE_PIPELINE_DATABASE_URL: the port must be 1 to 65535, not 70000",
    ),
    "an unsupported backend": (
        "QUOTE_PIPELINE_DATABASE_URL",
        f"mysql://u:{PASSWORD}@db.example/quotes",
        "QUOTE_PIPELINE_DATABASE_URL: the 'mysql' backend is not supported",
    ),
    "an asyncpg query parameter": (
        "QUOTE_PIPELINE_DATABASE_URL",
        f"postgresql+asyncpg://u:{PASSWORD}@db.example/quotes?ssl=require",
        "QUOTE_PIPELINE_DATABASE_URL: the query parameter 'ssl' is not a libpq keyword",
    ),
    "an in-memory SQLite database": (
        "QUOTE_PIPELINE_DATABASE_URL",
        "sqlite:///:memory:",
        "QUOTE_PIPELINE_DATABASE_URL: the site needs the pipeline's SQLite file",
    ),
    "a timeout that is not a number": (
        "QUOTE_PIPELINE_DAGSTER_TIMEOUT",
        "abc",
        "QUOTE_PIPELINE_DAGSTER_TIMEOUT must be a whole number of seconds (1 or more), not 'abc'",
    ),
    "a zero timeout": (
        "QUOTE_PIPELINE_DAGSTER_TIMEOUT",
        "0",
        "QUOTE_PIPELINE_DAGSTER_TIMEOUT must be a whole number of seconds",
    ),
    "credentials in the Dagster URL": (
        "QUOTE_PIPELINE_DAGSTER_URL",
        f"http://admin:{PASSWORD}@dagster.example:3000",
        "QUOTE_PIPELINE_DAGSTER_URL: a user name or password in the URL is not supported",
    ),
    "a user name in the Dagster URL": (
        "QUOTE_PIPELINE_DAGSTER_URL",
        "https://admin@dagster.example",
        "QUOTE_PIPELINE_DAGSTER_URL: a user name or password in the URL is not supported",
    ),
    "a bad Dagster port": (
        "QUOTE_PIPELINE_DAGSTER_URL",
        "http://dagster.example:abc",
        "QUOTE_PIPELINE_DAGSTER_URL: the port must be a number from 1 to 65535",
    ),
    "a Dagster URL that is not http": (
        "QUOTE_PIPELINE_DAGSTER_URL",
        "dagster.example:3000",
        "QUOTE_PIPELINE_DAGSTER_URL must be an http:// or https:// URL with a host",
    ),
    "a query in the Dagster URL": (
        "QUOTE_PIPELINE_DAGSTER_URL",
        "http://dagster.example:3000/?token=x",
        "QUOTE_PIPELINE_DAGSTER_URL: a query or fragment is not supported",
    ),
    "no secret key": (
        "DJANGO_SECRET_KEY",
        "",
        "DJANGO_SECRET_KEY is not set: set it to a long random string",
    ),
    "an unknown flag value": (
        "QUOTE_SITE_READ_ONLY",
        "maybe",
        "QUOTE_SITE_READ_ONLY must be 1/true/yes/on or 0/false/no/off, not 'maybe'",
    ),
    "an unknown time zone": (
        "QUOTE_SITE_TIME_ZONE",
        "Mars/Olympus_Mons",
        "QUOTE_SITE_TIME_ZONE: 'Mars/Olympus_Mons' is not an IANA time zone name",
    ),
}


@pytest.mark.parametrize(("name", "value", "message"), list(BAD.values()), ids=list(BAD))
def test_a_bad_setting_is_one_line_naming_the_variable(
    environment: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    environment.setenv(name, value)
    with pytest.raises(ImproperlyConfigured) as raised:
        _settings()
    text = str(raised.value)
    assert text.startswith(message)
    assert "\n" not in text and PASSWORD not in text


def test_good_settings(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = _settings()
    assert settings["QUOTE_PIPELINE_DAGSTER_URL"] == "http://127.0.0.1:3000"
    assert settings["QUOTE_PIPELINE_DAGSTER_TIMEOUT"] == 10
    assert settings["SECRET_KEY"] == SECRET_KEY and settings["DEBUG"] is False
    database = settings["DATABASES"]["default"]
    assert database["NAME"] == f"file:{tmp_path / 'q.db'}?mode=ro"
    assert database["OPTIONS"]["uri"] is True

    environment.setenv("QUOTE_PIPELINE_DAGSTER_URL", "https://Dagster.example:8443/ops/")
    environment.setenv("QUOTE_PIPELINE_DAGSTER_TIMEOUT", " 30 ")
    environment.setenv("QUOTE_SITE_READ_ONLY", "off")
    environment.delenv("DJANGO_SECRET_KEY")
    environment.setenv("DJANGO_DEBUG", "1")  # a dev-only key: DEBUG only
    settings = _settings()
    assert settings["QUOTE_PIPELINE_DAGSTER_URL"] == "https://dagster.example:8443/ops"
    assert settings["QUOTE_PIPELINE_DAGSTER_TIMEOUT"] == 30
    assert settings["DEBUG"] is True and settings["SECRET_KEY"]
    assert settings["DATABASES"]["default"]["NAME"].endswith("?mode=rw")  # never created

    environment.setenv("QUOTE_PIPELINE_DAGSTER_URL", "http://[::1]:3000")
    assert _settings()["QUOTE_PIPELINE_DAGSTER_URL"] == "http://[::1]:3000"


def _run(code: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SECRET_KEY": SECRET_KEY, **env}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, *code],
        cwd=SITE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command",
    [["manage.py", "check"], ["-c", "import quote_site.wsgi"]],
    ids=["manage.py", "wsgi.py"],
)
def test_manage_and_wsgi_fail_in_one_line(command: list[str], tmp_path: Path) -> None:
    bad = _run(
        command,
        QUOTE_PIPELINE_DATABASE_URL=f"postgresql://u:{PASSWORD}@db.example:abc/quotes",
    )
    assert bad.returncode == 1
    assert bad.stderr == (
        "quote_site: error: QUOTE_PIPELINE_DATABASE_URL is not a usable database URL "
        "(check its form and port)\n"
    )
    no_key = _run(command, DJANGO_SECRET_KEY="")
    assert no_key.returncode == 1
    assert no_key.stderr.startswith("quote_site: error: DJANGO_SECRET_KEY is not set")
    assert no_key.stderr.count("\n") == 1


def test_manage_check_passes_on_good_settings_without_touching_the_database(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "absent" / "quotes.db"
    good = _run(["manage.py", "check"], QUOTE_PIPELINE_DATABASE_URL=f"sqlite:///{missing}")
    assert good.returncode == 0, good.stderr
    assert "no issues" in good.stdout
    assert not missing.parent.exists()
