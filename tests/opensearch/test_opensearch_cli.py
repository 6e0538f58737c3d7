"""The command line pointed at OpenSearch (``--buffer opensearch:http://HOST:PORT``): the real
stream fixtures ingested, listed, settled into an embedded replica and exported; and the demo
end to end against osmem-server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from buffer.opensearch_local import LocalOpenSearch
from qldb_settle.cli import main

EVENTS = (
    "qldb-simple-demo__streams-dynamodb__data.json",
    "qldb-simple-demo__streams-es__data.json",
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_ingest_status_blocks_settle_export_through_opensearch(
    osmem: LocalOpenSearch,
    prefix: str,
    fixtures_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    buffer = ["--buffer", f"opensearch:{osmem.url}", "--index-prefix", prefix]
    destination = ["--destination", f"embedded:{tmp_path / 'replica.db'}"]
    files = [str(fixtures_dir / name) for name in EVENTS]

    code, ingested = _run(capsys, "ingest", *buffer, "--json", *files)
    assert code == 0
    assert ingested["stored"] == {"blocks": 2, "statements": 6, "revisions": 2, "control": 0}
    code, again = _run(capsys, "ingest", *buffer, "--json", *files)  # Kinesis re-delivers
    assert code == 0 and again["duplicates"] == 4 and again["stored"]["blocks"] == 0

    code, status = _run(capsys, "status", *buffer, *destination, "--json")
    assert status["blocks"]["pending"] == 2 and status["statements"] == 6
    code, listed = _run(capsys, "blocks", *buffer, "--state", "pending", "--json")
    assert len(listed["blocks"]) == 2

    code, settled = _run(
        capsys, "settle", *buffer, *destination, "--now", "2100-01-01T00:00:00Z", "--json"
    )
    assert code == 0 and settled["replayed"]["blocks"] == 2 and not settled["halted"]
    code, status = _run(capsys, "status", *buffer, *destination, "--json")
    assert status["blocks"]["replayed"] == 2 and status["blocks"]["pending"] == 0

    assert main(["export", *destination, "--format", "json"]) == 0
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {d["table"] for d in documents} == {"BicycleLicence"}
    assert len(documents) == 2


@pytest.mark.slow
def test_the_demo_against_osmem_server_is_verified(
    osmem: LocalOpenSearch, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _run(
        capsys,
        "demo",
        "--buffer",
        f"opensearch:{osmem.url}",
        "--index-prefix",
        prefix,
        "--transactions",
        "1000",
        "--workdir",
        str(tmp_path / "demo"),
        "--json",
    )
    assert report["verified"] is True, report
    assert code == 0
    assert report["blocks_replayed"] == report["replayed"]["blocks"] > 0
    assert report["quarantined"] == 0 and report["late"] == 0 and not report["halted"]
