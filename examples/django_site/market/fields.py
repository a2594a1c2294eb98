"""A model field for the pipeline's exact prices (its ``ExactDecimal`` column type)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


class ExactDecimalField(models.Field):
    """An exact decimal, every stored digit kept: ``'232.80'`` reads as ``Decimal('232.80')``.

    The pipeline stores these as NUMERIC on PostgreSQL and as text on SQLite. Django's own
    ``DecimalField`` goes through a float on SQLite and quantizes to a fixed number of places;
    this field converts whatever the driver returns with ``Decimal(str(value))`` on both
    backends, and never makes a float. (On SQLite, comparisons in a query compare text: filter
    on the ticker and date, not on a price.)
    """

    description = "Exact decimal (NUMERIC on PostgreSQL, text on SQLite)"

    def db_type(self, connection: BaseDatabaseWrapper) -> str:
        return "varchar(64)" if connection.vendor == "sqlite" else "numeric"

    def from_db_value(
        self, value: Any, expression: Any, connection: BaseDatabaseWrapper
    ) -> Decimal | None:
        return None if value is None else _exact(value)

    def to_python(self, value: Any) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, float):
            raise ValidationError(f"{value!r} is a float: exact prices are Decimal or text")
        try:
            return _exact(value)
        except InvalidOperation:
            raise ValidationError(f"{value!r} is not a decimal number") from None

    def get_prep_value(self, value: Any) -> Any:
        return self.to_python(super().get_prep_value(value))

    def get_db_prep_value(
        self, value: Any, connection: BaseDatabaseWrapper, prepared: bool = False
    ) -> Any:
        if not prepared:
            value = self.get_prep_value(value)
        if value is None:
            return None
        return str(value) if connection.vendor == "sqlite" else value


def _exact(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
