"""Faults the chaos campaign met, reproduced deterministically in the smallest setting."""

from __future__ import annotations

import contextlib
from pathlib import Path

from journal.errors import TransientError
from tests.qldb.qldb_server import start_serve_qldb


def test_closing_a_qldb_destination_whose_endpoint_is_down_raises_nothing_unexpected(
    tmp_path: Path,
) -> None:
    from destination.qldb import QldbDestination

    proc, url = start_serve_qldb(f"embedded:{tmp_path}/")
    destination = QldbDestination("chaos-close", endpoint=url)
    try:
        assert destination.checkpoint("ledger", "strand") is None  # a pooled session is open
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    # The endpoint is gone: ending the session cannot succeed. That is transient at worst.
    with contextlib.suppress(TransientError):
        destination.close()
