"""Research analytics: daily_metrics and its candlestick charts."""
