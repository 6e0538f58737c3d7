"""``qldb-settle export`` and ``qldb-settle query`` on a replica built by replaying blocks."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from destination.embedded import EmbeddedDestination
from destination.port import BlockReplay, RevisionOp, StatementOp
from journal.records import BlockAddress
from qldb_settle.cli import main
from settler.compare import documents_of_export

LEDGER, STRAND = "us-east-1:111122223333:src", "SrcStrand0000000000000"


def _block(seq: int, mode: Any, ops: list[Any], revisions: tuple[RevisionOp, ...] = ()) -> Any:
    return BlockReplay(
        block_id=f"{LEDGER}/{STRAND}/{seq}", ledger=LEDGER, address=BlockAddress(STRAND, seq),
        block_hash=hashlib.sha256(bytes([seq])).digest(), mode=mode, ops=tuple(ops),
        revisions=revisions,
    )  # fmt: skip


@pytest.fixture
def replica(tmp_path: Path) -> Path:
    path = tmp_path / "replica.db"
    dest = EmbeddedDestination(path, id_seed=1)
    data = simpleion.loads(
        '{Name: "Raul", Balance: 12.50, DOB: 1963-08-19T, At: 2021-09-16T10:00:00.000Z, '
        'Photo: {{aGVsbG8=}}, Tags: ["a"], Big: 1.5e0, N: null}'
    )
    b0 = _block(
        0,
        "statements",
        [StatementOp(text="CREATE TABLE Vehicle", index=0),
         StatementOp(text="CREATE TABLE Person", index=1),
         StatementOp(text="INSERT INTO Vehicle VALUE {'VIN': 'V1'}", index=2)],
    )  # fmt: skip
    b1 = _block(
        1,
        "revisions",
        [RevisionOp(table_name="Person", table_id="t", document_id="SrcDoc0000000000000001",
                    version=0, data=data)],
    )  # fmt: skip
    dest.apply([b0], None)
    dest.apply([b1], b0.checkpoint())
    dest.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_ion_is_lossless_sorted_and_without_internal_tables(
    replica: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "export", "--destination", f"embedded:{replica}")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    rows = [simpleion.loads(line) for line in lines]
    assert [r["table"] for r in rows] == ["Person", "Vehicle"]
    person, vehicle = rows
    assert person["source_id"] == "SrcDoc0000000000000001" and len(person["id"]) == 22
    assert "source_id" not in vehicle and vehicle["data"] == {"VIN": "V1"}
    assert str(person["data"]["Balance"]) == "12.50"
    assert person["data"]["DOB"].precision.name == "DAY"
    assert bytes(person["data"]["Photo"]) == b"hello"
    # the verify command reads it back
    export = tmp_path / "export.ion"
    export.write_text(out)
    assert sorted(t for t, _ in documents_of_export(export)) == ["Person", "Vehicle"]
    code, out2, _ = run(capsys, "verify", "--destination", f"embedded:{replica}",
                        "--expected", str(export))  # fmt: skip
    assert code == 0, out2


def test_export_json_for_people(replica: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "export", "--destination", f"embedded:{replica}", "--format", "json")
    assert code == 0
    first = out.splitlines()[0]
    assert '"Balance": 12.50' in first  # the decimal written exactly, as a number
    person = json.loads(first, parse_float=Decimal)
    assert person["table"] == "Person" and person["source_id"] == "SrcDoc0000000000000001"
    data = person["data"]
    assert data["Balance"] == Decimal("12.50") and data["DOB"] == "1963-08-19T"
    assert data["At"] == "2021-09-16T10:00:00.000Z" and data["Photo"] == "aGVsbG8="
    assert data["Tags"] == ["a"] and data["Big"] == Decimal("1.5") and data["N"] is None


def test_query_prints_results_and_writes_nothing(
    replica: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tip_of(replica)
    code, out, _ = run(
        capsys, "query", "--destination", f"embedded:{replica}",
        "SELECT p.Name, p.Balance FROM Person AS p WHERE p.Balance > 10",
    )  # fmt: skip
    assert code == 0
    assert [simpleion.loads(line) for line in out.splitlines()] == [
        {"Name": "Raul", "Balance": Decimal("12.50")}
    ]
    assert tip_of(replica) == before  # no block for the query


def tip_of(path: Path) -> int:
    from ledger import EmbeddedLedger

    with EmbeddedLedger(path) as led:
        return led.tip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "DELETE FROM Person"], "SELECT statements only, not DELETE"),
        # A stored procedure parses: it is refused as a write, not as a parse error.
        (["query", "EXEC redact_revision 'a', 'b', 'c'"], "SELECT statements only, not EXEC"),
        (["query", "SELECT FROM"], "does not parse"),
        (["query", "SELECT * FROM Nope"], "no active table named 'Nope'"),
    ],
)
def test_query_refuses_what_it_does_not_run(
    replica: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, argv[0], "--destination", f"embedded:{replica}", *argv[1:])
    assert code == 2 and out == "" and message in err


def test_missing_files_and_qldb_destinations_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    code, _, err = run(capsys, "export", "--destination", f"embedded:{missing}")
    assert code == 2 and "no such replica file" in err and not missing.exists()
    code, _, err = run(capsys, "export", "--destination", "qldb:my-ledger")
    assert code == 2 and "not supported by this command yet" in err
    code, _, err = run(capsys, "query", "--destination", "qldb:my-ledger", "SELECT * FROM T")
    assert code == 2 and "not supported by this command yet" in err
