"""Where a block is replayed: the destination port and its adapters (embedded ledger, QLDB)."""
