"""Values that outlive an upgrade, and how several providers' failures add up."""

from __future__ import annotations

import copyreg
import pickle
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from quote_pipeline.defs.quotes.assets import QuoteBatch
from quote_pipeline.models import FailureKind, Quote, SymbolFailure
from quote_pipeline.price_bars import DailyBar
from quote_pipeline.providers.base import QuoteFetchResult, QuotePlan
from quote_pipeline.providers.fallback import combined_failure, combined_kind

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


class _Pickled:
    """Pickles as ``cls`` with ``state``: what older code stored for it."""

    def __init__(self, cls: type, state: Any) -> None:
        self.cls, self.state = cls, state

    def __reduce__(self) -> Any:
        return (copyreg._reconstructor, (self.cls, object, None), self.state)


def stored_by_older_code(cls: type, state: Any) -> Any:
    return pickle.loads(pickle.dumps(_Pickled(cls, state)))


def test_step_outputs_pickled_before_providers_load_as_fmp_values() -> None:
    """A run's stored raw_quotes (or a mapped step's input) written before the upgrade is
    read after it: the rows were FMP's, and nothing is left unset."""
    quote = stored_by_older_code(Quote, ["AAPL", Decimal("190.5"), 10, None, NOW, NOW])
    assert quote == Quote("AAPL", Decimal("190.5"), 10, None, NOW, NOW, source="fmp")
    bar_state = ["AAPL", date(2026, 11, 27), *[Decimal(1)] * 4, 5, None, None, None, NOW]
    bar = stored_by_older_code(DailyBar, [*bar_state, "as_traded"])
    assert bar.source == "fmp" and bar.price_basis == "as_traded"
    result = stored_by_older_code(
        QuoteFetchResult, {"quotes": [quote], "failures": [], "requests_made": 3}
    )
    assert result.fallbacks == [] and result.requests_by_provider == {}
    assert result.served_by() == {"fmp": 1}
    batch = stored_by_older_code(QuoteBatch, [("AAPL", "MSFT"), True, 1])
    assert batch.plans == (QuotePlan("fmp", multi_symbol=True),)
    assert pickle.loads(pickle.dumps(batch)) == batch


def test_a_failure_from_several_providers_keeps_what_can_still_change() -> None:
    transient, quota = FailureKind.SERVER_ERROR, FailureKind.QUOTA_EXHAUSTED
    assert combined_kind([FailureKind.NOT_IN_PLAN, transient]) == transient
    # A provider not asked (its quota spent): the symbol stays pending, the check says so.
    assert combined_kind([FailureKind.NOT_IN_PLAN, quota]) == quota
    assert combined_kind([quota, FailureKind.NO_QUOTE]) == quota
    assert combined_kind([FailureKind.NOT_IN_PLAN, FailureKind.NO_QUOTE]) == FailureKind.NO_QUOTE
    one = SymbolFailure("X", FailureKind.NOT_IN_PLAN, "HTTP 402")
    assert combined_failure("X", [("fmp", one)]) is one  # one provider: as it was
    both = combined_failure(
        "X", [("fmp", one), ("massive", SymbolFailure("X", FailureKind.NO_QUOTE, "absent"))]
    )
    assert both.kind == FailureKind.NO_QUOTE
    assert both.message == "fmp: not_in_plan (HTTP 402); massive: no_quote (absent)"
