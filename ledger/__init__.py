"""The embedded ledger: QLDB's PartiQL subset over SQLite, with its own hash-chained journal."""
