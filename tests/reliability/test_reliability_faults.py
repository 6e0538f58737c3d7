"""Faults the chaos campaign met, reproduced deterministically in the smallest setting."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from runtime.errors import TransientError
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


def test_a_settle_is_kept_out_while_another_settle_of_the_same_user_holds_the_lease(
    tmp_path: Path,
) -> None:
    from buffer.sqlite import SqliteBuffer
    from qldb_settle.commands.settle import _owner

    buffer_path = tmp_path / "buffer.db"
    buffer = SqliteBuffer(buffer_path)
    try:
        # This process is a running settle of this user on this host, in the middle of its cycle.
        assert buffer.acquire_lease(_owner(), 900, datetime.now(UTC))
    finally:
        buffer.close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qldb_settle.cli",
            "settle",
            "--buffer",
            f"sqlite:{buffer_path}",
            "--destination",
            f"embedded:{tmp_path / 'replica.db'}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The second settle stands aside (exit 0) and says who holds the lease until when.
    assert done.returncode == 0, (done.returncode, done.stderr[-300:])
    assert "holds the lease of the buffer until" in done.stderr and "standing aside" in done.stderr
    assert json.loads(done.stdout)["replayed"]["blocks"] == 0
