"""Reference data: what each tracked company is (name, exchange, sector, identifiers)."""
