"""Issue 14: ``settle`` reports how fast it goes: ``--json`` carries ``rates``, ``settle()`` calls
its ``progress`` hook after each destination transaction, and ``qldb-settle settle`` shows the
blocks per second on stderr when stderr is a terminal (a real pseudo-terminal here), never in
``--json`` or when stderr is not a terminal."""

from __future__ import annotations

import io
import itertools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from settler_blocks import Chain, Rev, put

from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from qldb_settle.cli import main
from settler.cycle import SettlePolicy, settle
from settler.cycle_report import JSON_KEYS, SettleReport

NOW = "2100-01-01T00:00:00Z"


def _buffer(path: Path, inserts: int = 4) -> None:
    chain = Chain()
    blocks = [chain.block(["CREATE TABLE Person"])]
    for n in range(inserts):
        doc = f"{n:022d}"
        blocks.append(
            chain.block(
                [f"INSERT INTO Person << {{'n': {n}}} >>"], [Rev("Person", doc, 0, {"n": n})]
            )
        )
    buffer = SqliteBuffer(path)
    put(buffer, *blocks)
    buffer.close()


def test_the_progress_hook_sees_every_group_and_the_rates_add_up(tmp_path: Path) -> None:
    _buffer(tmp_path / "b.db")
    seen: list[tuple[int, float]] = []

    def progress(report: SettleReport) -> None:
        seen.append((report.blocks, report.seconds))

    buffer = SqliteBuffer(tmp_path / "b.db")
    dest = EmbeddedDestination(tmp_path / "r.db")
    try:
        report = settle(
            buffer, dest, now=datetime(2100, 1, 1, tzinfo=UTC),
            policy=SettlePolicy(window_seconds=120, group_size=2), progress=progress,
        )  # fmt: skip
    finally:
        dest.close()
        buffer.close()
    assert report.blocks == 5
    assert [b for b, _ in seen] == [2, 4, 5]  # one call per destination transaction
    assert all(a <= b for (_, a), (_, b) in itertools.pairwise(seen))
    assert report.seconds >= seen[-1][1] > 0
    rates = report.to_json()["rates"]
    assert set(rates) == {"seconds", "blocks_per_s", "statements_per_s", "revisions_per_s"}
    assert rates["blocks_per_s"] == pytest.approx(5 / report.seconds, rel=0.01)
    assert rates["revisions_per_s"] == pytest.approx(report.revisions / report.seconds, rel=0.01)


def _cli(tmp_path: Path, *extra: str, tty: bool) -> tuple[int, str, str]:
    """``settle`` in process, stderr a real pseudo-terminal (``tty``) or a plain buffer."""
    argv = ["settle", "--now", NOW, "--buffer", f"sqlite:{tmp_path / 'b.db'}",
            "--destination", f"embedded:{tmp_path / 'r.db'}", *extra]  # fmt: skip
    out, saved_out, saved_err = io.StringIO(), sys.stdout, sys.stderr
    if not tty:
        err = io.StringIO()
        sys.stdout, sys.stderr = out, err
        try:
            code = main(argv)
        finally:
            sys.stdout, sys.stderr = saved_out, saved_err
        return code, out.getvalue(), err.getvalue()
    master, slave = os.openpty()
    term = os.fdopen(slave, "w")
    sys.stdout, sys.stderr = out, term
    try:
        code = main(argv)
    finally:
        sys.stdout, sys.stderr = saved_out, saved_err
        term.close()
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the slave is closed: everything is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return code, out.getvalue(), b"".join(chunks).decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("QLDB_SETTLE_BUFFER", "QLDB_SETTLE_DESTINATION", "QLDB_SETTLE_WINDOW_SECONDS",
                "QLDB_SETTLE_EARLY_RELEASE"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def test_a_terminal_sees_blocks_per_second_on_stderr(tmp_path: Path, env: None) -> None:
    _buffer(tmp_path / "b.db")
    code, out, err = _cli(tmp_path, tty=True)
    assert code == 0
    assert "settling: 5 blocks in" in err and "blocks/s" in err
    assert "blocks/s" in out and "replayed 5 blocks" in out  # the summary has the rates too


def test_no_progress_in_json_or_off_a_terminal(tmp_path: Path, env: None) -> None:
    _buffer(tmp_path / "b.db")
    code, out, err = _cli(tmp_path, "--json", tty=True)
    assert code == 0 and "settling:" not in err
    report = json.loads(out)
    assert tuple(report) == JSON_KEYS and report["replayed"]["blocks"] == 5
    assert report["rates"]["seconds"] > 0 and report["rates"]["blocks_per_s"] > 0
    plain = tmp_path / "plain"
    plain.mkdir()
    _buffer(plain / "b.db")
    code, out, err = _cli(plain, tty=False)
    assert code == 0 and "settling:" not in err and "replayed 5 blocks" in out
