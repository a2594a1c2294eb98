"""An FMP-compatible sandbox server: deterministic quotes, bars and news plus injectable
faults."""

from quote_pipeline.sandbox.news import article_tone
from quote_pipeline.sandbox.server import (
    FaultConfig,
    SandboxConfig,
    SandboxServer,
    build_app,
    json_dumps,
)

__all__ = [
    "FaultConfig",
    "SandboxConfig",
    "SandboxServer",
    "article_tone",
    "build_app",
    "json_dumps",
]
