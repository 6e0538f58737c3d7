"""Where a record waits: the settling buffer port and its adapters (SQLite, OpenSearch)."""
