"""The decision log (``app.jsonl`` + ``app.log``), crash-safe JSONL appends, clarified data, analytics."""
