"""``qldb-settle demo --destination qldb:NAME --qldb-endpoint URL``: the whole pipeline into a
replica written through pyqldb to ``serve-qldb``, verified against the source ledger and the
stream's own revisions (the CLI as a subprocess, as an operator runs it): issue 7's "done when"
(``--transactions 500 --json`` reports ``verified: true``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from destination.qldb import QldbDestination

from .conftest import REPO_ROOT, Served


@pytest.mark.slow
def test_the_demo_of_500_transactions_through_pyqldb_is_verified(
    served: Served, ledger_name: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "qldb_settle.cli", "demo",
            "--destination", f"qldb:{ledger_name}", "--qldb-endpoint", served.url,
            "--transactions", "500", "--json", "--workdir", str(tmp_path / "demo"),
        ],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["verified"] is True
    assert report["transactions"] == 500 and report["blocks_replayed"] > 300
    assert all(c["equal"] for c in report["comparisons"])
    assert report["replayed"]["revisions"] > 0 and report["replayed"]["statements"] > 0
    replica = QldbDestination(ledger_name, endpoint=served.url)
    try:
        copies = list(replica.copies())
    finally:
        replica.close()
    assert len(copies) == report["comparisons"][0]["documents"]
    assert all(c.source_id is not None for c in copies)
