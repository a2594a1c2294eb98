"""Alembic migrations of the data tables; run them through ``storage.schema_migrations``."""
