"""An FMP-compatible sandbox server: deterministic quotes and bars plus injectable faults."""

from quote_pipeline.sandbox.server import (
    FaultConfig,
    SandboxConfig,
    SandboxServer,
    build_app,
    json_dumps,
)

__all__ = ["FaultConfig", "SandboxConfig", "SandboxServer", "build_app", "json_dumps"]
