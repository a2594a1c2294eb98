"""Corporate actions (splits, dividends) and the adjusted daily history derived from them."""
