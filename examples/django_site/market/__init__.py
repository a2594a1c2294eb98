"""The ``market`` app: read-only pages over the pipeline's tables, and a refresh button."""
