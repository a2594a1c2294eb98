"""Stock news with a sentiment score per article and per ticker-day."""
