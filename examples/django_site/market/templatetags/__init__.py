"""Template filters of the market app."""
