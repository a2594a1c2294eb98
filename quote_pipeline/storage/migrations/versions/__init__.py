"""One module per schema revision, applied in order by Alembic (this file is not one)."""
