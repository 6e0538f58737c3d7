"""A block that fails replay while a late block of its strand waits (issue 19): the halt reason
names the late block and the commands that recover (``resolve --apply-late``, ``resolve
--retry``, ``settle``), and following them ends with the block replayed. On a real SQLite buffer
file and the embedded ledger, which really refuses an INSERT into a table it does not have."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from settler_blocks import STRAND, T0, Built, Chain, Rev, put

from buffer.port import BlockRow, SettlingBuffer
from destination.embedded import EmbeddedDestination
from settler.cycle import SettlePolicy, settle
from settler.cycle_report import LATE_LISTED, SettleReport, human_duration, late_blocks_hint
from settler.operator import Action, resolve

WINDOW = 2.0


def _cycle(buffer: SettlingBuffer, dest: EmbeddedDestination, now: datetime) -> SettleReport:
    return settle(buffer, dest, now=now, policy=SettlePolicy(window_seconds=WINDOW))


def _states(buffer: SettlingBuffer) -> dict[int, str]:
    return {r.sequence_no: r.state for r in buffer.blocks()}


def _resolve(
    buffer: SettlingBuffer, dest: EmbeddedDestination, built: Built, action: Action, at: datetime
) -> None:
    block = buffer.get_block(built.summary.block_id)
    assert block is not None
    resolve(buffer, dest, block, action, reason=f"{action} (test)", actor="op", now=at)


def _blocks() -> tuple[Built, Built, Built]:
    chain = Chain()
    person = chain.block(["CREATE TABLE Person"])
    car = chain.block(["CREATE TABLE Car"])
    insert = chain.block(
        ["INSERT INTO Person {'name': 'Ann'}"], [Rev("Person", "DocAnn0000000000000000", 0,
                                                     {"name": "Ann"})]
    )  # fmt: skip
    return person, car, insert


def test_the_halt_names_the_late_ddl_block_and_the_commands_that_recover(
    buffer: SettlingBuffer, tmp_path: Path
) -> None:
    person, car, insert = _blocks()
    dest = EmbeddedDestination(tmp_path / "replica.db")
    try:
        # The stream delays CREATE TABLE Person past the window: the replica starts without it.
        put(buffer, car, insert, arrived_at=T0)
        first = _cycle(buffer, dest, insert.commit + timedelta(seconds=WINDOW))
        assert first.blocks == 1 and first.halted
        assert _states(buffer) == {2: "replayed", 3: "quarantined"}
        assert "no active table named 'Person'" in (first.halt_reason or "")
        assert "late" not in (first.halt_reason or "")  # nothing late waits yet: nothing named
        put(buffer, person, arrived_at=person.commit + timedelta(seconds=8))
        assert _states(buffer)[1] == "late"

        # The next cycle halts at the quarantined block and now names the late one.
        again = _cycle(buffer, dest, insert.commit + timedelta(seconds=30))
        reason = again.halt_reason or ""
        assert again.halted and again.blocks == 0
        assert f"{STRAND}/1" in reason and "1 late block of this strand" in reason
        assert f"`qldb-settle resolve {STRAND}/1 --apply-late --reason TEXT`" in reason
        assert f"`qldb-settle resolve {STRAND}/3 --retry --reason TEXT`" in reason
        assert reason.index("--apply-late") < reason.index("--retry")

        # Retried without the late block, it fails again, now with the hint at the failure.
        _resolve(buffer, dest, insert, "retry", insert.commit + timedelta(seconds=40))
        failed = _cycle(buffer, dest, insert.commit + timedelta(seconds=50))
        assert failed.halted and failed.quarantined_now
        assert f"`qldb-settle resolve {STRAND}/1 --apply-late --reason TEXT`" in (
            failed.halt_reason or ""
        )

        # The commands the reason names recover it.
        at = insert.commit + timedelta(seconds=60)
        _resolve(buffer, dest, person, "apply-late", at)
        _resolve(buffer, dest, insert, "retry", at)
        done = _cycle(buffer, dest, at + timedelta(seconds=1))
        assert not done.halted and done.blocks == 1, done.halt_reason
        assert _states(buffer) == {1: "replayed", 2: "replayed", 3: "replayed"}
        assert [(table, dict(data)) for table, _, data in dest.documents()] == [
            ("Person", {"name": "Ann"})
        ]
    finally:
        dest.close()


def test_a_failure_that_is_not_a_replay_names_no_late_block(
    buffer: SettlingBuffer, tmp_path: Path
) -> None:
    """Only a replay failure can be caused by a missing earlier block: a block refused by
    verification keeps the plain reason even while late blocks wait."""
    from settler_blocks import with_statement_text

    person, car, insert = _blocks()
    dest = EmbeddedDestination(tmp_path / "replica.db")
    try:
        put(buffer, car, arrived_at=T0)
        assert _cycle(buffer, dest, car.commit + timedelta(seconds=WINDOW)).blocks == 1
        put(buffer, person, arrived_at=T0)  # late
        forged = with_statement_text(insert, 0, "INSERT INTO Person {'name': 'Bob'}")
        put(buffer, forged, arrived_at=T0)
        report = _cycle(buffer, dest, insert.commit + timedelta(seconds=WINDOW))
        assert report.halted and "statementDigest" in (report.halt_reason or "")
        assert "--apply-late" not in (report.halt_reason or "")
    finally:
        dest.close()


def _row(seq: int) -> BlockRow:
    return BlockRow(
        block_id=f"L/{STRAND}/{seq}", ledger="L", strand_id=STRAND, sequence_no=seq,
        state="late", commit_time=T0, statements=1, revisions_expected=0,
        revisions_buffered=0, reason=None, updated_at=None, actor=None,
    )  # fmt: skip


def test_the_hint_lists_at_most_a_few_late_blocks_and_repeats_the_flags() -> None:
    many = [_row(n) for n in range(1, LATE_LISTED + 4)]
    hint = late_blocks_hint(STRAND, 20, many, flags="--buffer sqlite:b.db")
    assert f"{LATE_LISTED + 3} late blocks" in hint and "and 3 more" in hint
    assert hint.count("--apply-late") == LATE_LISTED
    assert "the other late blocks the same way" in hint
    assert f"`qldb-settle resolve --buffer sqlite:b.db {STRAND}/20 --retry" in hint
    assert hint.endswith("`qldb-settle settle --buffer sqlite:b.db`")
    one = late_blocks_hint(STRAND, 4, [_row(2)])
    assert "1 late block of this strand" in one and "waits in the buffer" in one
    assert "for each" not in one and "other late blocks" not in one


def test_human_durations() -> None:
    cases = {
        None: "-",
        0: "0 ms",
        161: "161 ms",
        -161: "-161 ms",
        999.4: "999 ms",
        999.6: "1.0 s",
        7_949: "7.9 s",
        9_960: "10 s",
        42_000: "42 s",
        59_600: "1 min 0 s",
        125_000: "2 min 5 s",
        3_599_600: "1 h 0 min",
        (3 * 3600 + 12 * 60) * 1000: "3 h 12 min",
        86_399_999: "1 day 0 h",
        (2 * 86400 + 4 * 3600) * 1000: "2 days 4 h",
        45 * 86_400_000: "45 days",
        157_795_891_063: "5.0 years",
    }
    for ms, text in cases.items():
        assert human_duration(ms) == text, ms


def test_a_block_missing_revisions_says_how_long_in_human_units(
    buffer: SettlingBuffer, tmp_path: Path
) -> None:
    chain = Chain()
    block = chain.block(
        ["INSERT INTO Person {'name': 'Ann'}"], [Rev("Person", "DocAnn0000000000000000", 0,
                                                     {"name": "Ann"})]
    )  # fmt: skip
    buffer.put(block.incoming(arrived_at=T0)[:1])  # the summary, not its revision
    dest = EmbeddedDestination(tmp_path / "replica.db")
    try:
        report = _cycle(buffer, dest, block.commit + timedelta(seconds=125))
    finally:
        dest.close()
    assert report.halted
    assert (report.halt_reason or "").endswith(
        "is still missing revisions of DocAnn0000000000000000 2 min 5 s after its commit"
    )
