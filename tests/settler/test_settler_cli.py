"""The command line of the settler: ``settle`` and ``resolve`` (exit codes, ``--json`` keys),
with the other commands around them (``ingest``, ``blocks``, ``status``, ``export``), in
process, on real SQLite buffer and embedded replica files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from settler_blocks import LEDGER, Chain, Rev, put, with_statement_text
from settler_realdata import EVENTS, fixture

from buffer.sqlite import SqliteBuffer
from journal.records import RevisionDetails
from qldb_settle.cli import main
from settler.cycle_report import JSON_KEYS

NOW = "2100-01-01T00:00:00Z"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _ = _run(capsys, *argv, "--json")
    (line,) = out.splitlines()  # exactly one JSON object
    return code, json.loads(line)


@pytest.fixture
def urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    for var in ("QLDB_SETTLE_BUFFER", "QLDB_SETTLE_DESTINATION", "QLDB_SETTLE_WINDOW_SECONDS",
                "QLDB_SETTLE_EARLY_RELEASE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    return f"sqlite:{tmp_path / 'b.db'}", f"embedded:{tmp_path / 'r.db'}"


def _plain(value: Any) -> Any:
    """The JSON form of the (strings, ints, lists and structs only) real fixture data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    assert isinstance(value, int) and not isinstance(value, bool)
    return int(value)


def _revisions() -> list[RevisionDetails]:
    from ingest.decode import decode_file

    return [
        item.record
        for name in EVENTS
        for item in decode_file(fixture(name))
        if isinstance(getattr(item, "record", None), RevisionDetails)
    ]


def test_ingest_settle_export_prints_the_replayed_documents(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str]
) -> None:
    pytest.importorskip(
        "qldb_settle.commands.export", reason="`qldb-settle export` not written yet"
    )
    buffer, dest = urls
    code, _, _ = _run(capsys, "ingest", "--buffer", buffer, *[str(fixture(n)) for n in EVENTS])
    assert code == 0
    code, report = _json(capsys, "settle", "--now", NOW, "--buffer", buffer, "--destination", dest)
    assert code == 0
    assert tuple(report) == JSON_KEYS
    assert report["replayed"] == {"blocks": 2, "statements": 0, "revisions": 2}
    assert report["halted"] is False and len(report["checkpoint"]) == 2
    code, out, _ = _run(capsys, "export", "--destination", dest, "--format", "json")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    expected = {r.document_id: r.data for r in _revisions()}
    assert [d["table"] for d in documents] == ["BicycleLicence", "BicycleLicence"]
    assert {d["source_id"]: d["data"] for d in documents} == {
        doc_id: _plain(data) for doc_id, data in expected.items()
    }
    # A second cycle finds nothing to do and says so with exit 0.
    code, again = _json(capsys, "settle", "--now", NOW, "--buffer", buffer, "--destination", dest)
    assert code == 0 and again["replayed"]["blocks"] == 0


def test_a_quarantined_block_exits_1_and_resolve_skips_it(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str]
) -> None:
    buffer_url, dest = urls
    chain = Chain()
    b1 = chain.block(["CREATE TABLE Person"])
    b2 = chain.block(["INSERT INTO Person << {'n': 2} >>"], [Rev("Person", "D" * 22, 0, {"n": 2})])
    b3 = chain.block(["CREATE TABLE Car"])
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    put(buffer, b1, with_statement_text(b2, 0, "INSERT INTO Person << {'n': 3} >>"), b3)
    buffer.close()

    code, report = _json(
        capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest
    )
    assert code == 1 and report["halted"] and report["quarantined"] == 1
    assert "statementDigest" in report["halt_reason"]
    code, rows = _json(capsys, "blocks", "--buffer", buffer_url, "--state", "quarantined")
    assert code in (0, 1) and len(rows["blocks"]) == 1

    code, done = _json(
        capsys, "resolve", "--buffer", buffer_url, "--destination", dest, "2", "--skip",
        "--reason", "tampered copy", "--actor", "ops-ana", "--now", NOW,
    )  # fmt: skip
    assert code == 0
    assert (done["previous_state"], done["state"], done["actor"]) == (
        "quarantined", "skipped", "ops-ana",
    )  # fmt: skip
    assert done["checkpoint"]["sequence"] == 2
    code, report = _json(
        capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest
    )
    assert code == 0 and report["replayed"]["blocks"] == 1 and report["checkpoint"]["sequence"] == 3


def test_resolve_records_the_user_when_no_actor_is_given(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer_url, dest = urls
    monkeypatch.setenv("USER", "ops-bo")
    chain = Chain()
    b1 = chain.block(["CREATE TABLE Person"])
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    put(buffer, with_statement_text(b1, 0, "CREATE TABLE Persons"))
    buffer.close()
    assert (
        _json(capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest)[0] == 1
    )
    code, done = _json(
        capsys, "resolve", "--buffer", buffer_url, "--destination", dest, "1", "--retry",
        "--reason", "try again",
    )  # fmt: skip
    assert code == 0 and done["actor"] == "ops-bo" and done["state"] == "pending"


def test_a_held_lease_stands_aside_with_exit_0_and_says_until_when(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str]
) -> None:
    from datetime import UTC, datetime, timedelta

    buffer_url, dest = urls
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    now = datetime.now(UTC) + timedelta(days=1)
    assert buffer.acquire_lease("settler-lambda:req-1", 600, now)
    buffer.close()
    code, out, err = _run(capsys, "settle", "--buffer", buffer_url, "--destination", dest, "--json")
    until = (now + timedelta(seconds=600)).isoformat(timespec="seconds")
    assert (
        code == 0 and f"(settler-lambda:req-1) holds the lease of the buffer until {until}" in err
    )
    assert "standing aside" in err
    assert json.loads(out)["replayed"]["blocks"] == 0  # the --json contract holds


@pytest.mark.parametrize(
    "argv",
    [
        ["settle", "--follow", "--now", NOW],
        ["settle", "--now", "yesterday"],
        ["settle", "--group-size", "0"],
        ["resolve", "1", "--retry"],  # no --reason
        ["resolve", "1", "--reason", "x"],  # no decision
    ],
)
def test_bad_usage_exits_2(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str], argv: list[str]
) -> None:
    buffer_url, dest = urls
    try:
        code = main([*argv, "--buffer", buffer_url, "--destination", dest])
    except SystemExit as exc:  # argparse refuses before the command runs
        code = int(exc.code or 0)
    capsys.readouterr()
    assert code == 2


def test_start_after_makes_an_empty_replica_begin_after_a_block(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str]
) -> None:
    buffer_url, dest = urls
    chain = Chain()
    blocks = [chain.block([f"CREATE TABLE T{n}"]) for n in range(1, 4)]
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    put(buffer, *blocks)
    buffer.close()
    code, report = _json(
        capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest,
        "--start-after", "2",
    )  # fmt: skip
    assert code == 0 and report["replayed"]["blocks"] == 1
    assert report["checkpoint"]["sequence"] == 3
    code, _, err = _run(
        capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest,
        "--start-after", "1",
    )  # fmt: skip
    assert code == 2 and "already has a checkpoint" in err


def test_settle_json_counts_every_literal_digest_verified(
    capsys: pytest.CaptureFixture[str], urls: tuple[str, str]
) -> None:
    buffer_url, dest = urls
    chain = Chain()
    blocks = [
        chain.block(["CREATE TABLE Person", "CREATE INDEX ON Person (n)"]),
        chain.block(
            ["INSERT INTO Person << {'n': 1}, {'n': 2} >>", "SELECT * FROM Person"],
            [Rev("Person", "A" * 22, 0, {"n": 1}), Rev("Person", "B" * 22, 0, {"n": 2})],
        ),
        chain.block(
            ["UPDATE Person AS p SET p.m = 'x' WHERE p.n = 1"],
            [Rev("Person", "A" * 22, 1, {"n": 1, "m": "x"})],
        ),
    ]
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    put(buffer, *blocks)
    buffer.close()
    code, report = _json(
        capsys, "settle", "--now", NOW, "--buffer", buffer_url, "--destination", dest
    )
    assert code == 0
    assert report["replayed"] == {"blocks": 3, "statements": 4, "revisions": 0}
    assert report["digests"] == {"verified": 5, "unverified": 0}


def test_follow_cycles_on_the_real_clock_until_interrupted(urls: tuple[str, str]) -> None:
    import signal
    import subprocess
    import sys
    import time

    from destination.embedded import EmbeddedDestination

    buffer_url, dest_url = urls
    chain = Chain()  # committed in 2024: older than any window on the real clock
    buffer = SqliteBuffer(buffer_url.removeprefix("sqlite:"))
    put(buffer, *[chain.block([f"CREATE TABLE T{n}"]) for n in range(3)])
    buffer.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qldb_settle.cli", "settle", "--follow", "--interval", "0.2",
         "--buffer", buffer_url, "--destination", dest_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    path = dest_url.removeprefix("embedded:")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if Path(path).exists():
            dest = EmbeddedDestination(path)
            applied = dest.checkpoint(LEDGER, chain.strand)
            dest.close()
            if applied is not None and applied.sequence_no == 3:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()  # not left running into the next tests
        _, err = proc.communicate()
        pytest.fail(f"settle --follow still running 30 s after SIGINT; its stderr:\n{err}")
    assert proc.returncode == 0, err
    assert "cycles" in err
    dest = EmbeddedDestination(path)
    assert sorted(name for name, _, _ in dest.ledger.tables()) == ["T0", "T1", "T2"]
    dest.close()
