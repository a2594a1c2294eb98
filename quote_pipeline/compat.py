"""What the standard library has in newer Pythons than the oldest one we support (3.11)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

_T = TypeVar("_T")

if sys.version_info >= (3, 12):
    from itertools import batched
else:  # pragma: no cover - Python 3.11

    def batched(iterable: Iterable[_T], n: int) -> Iterator[tuple[_T, ...]]:
        """``itertools.batched`` of Python 3.12: tuples of ``n`` items, the last shorter."""
        if n < 1:
            raise ValueError("n must be at least one")
        iterator = iter(iterable)
        while chunk := tuple(islice(iterator, n)):
            yield chunk


__all__ = ["batched"]
