"""Where a block is released: settle, verify and replay in commit order, exactly once."""
