"""Operator decisions (DESIGN.md rule 5): ``resolve`` retry, skip and apply-late, recorded with
who, what, when and why; ``find_block``. Real SQLite buffer files; the destination is the
in-memory fake (``destination.memory``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from settler_blocks import T0, Built, Chain, Rev, put, with_statement_text

from buffer.port import SettlingBuffer
from destination.memory import MemoryDestination
from journal.errors import InputError
from runtime.errors import LeaseHeld
from settler.cycle import SettlePolicy, settle
from settler.operator import find_block, resolve

LATER = T0 + timedelta(days=1)


def _doc(n: int) -> str:
    return f"Doc{n:019d}"


def _insert(chain: Chain, n: int, skip: int = 0) -> Built:
    return chain.block(
        [("INSERT INTO Person ?", [{"n": n}])], [Rev("Person", _doc(n), 0, {"n": n})], skip=skip
    )


def _row(buffer: SettlingBuffer, seq: int) -> tuple[str, str | None, str | None]:
    (row,) = [r for r in buffer.blocks() if r.sequence_no == seq]
    return row.state, row.actor, row.reason


def _cycle(buffer: SettlingBuffer, dest: MemoryDestination) -> int:
    return settle(buffer, dest, now=LATER, policy=SettlePolicy(window_seconds=60)).blocks


def test_retry_puts_a_quarantined_block_back_in_line(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 4)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    dest.refuse[blocks[1].summary.block_id] = "destination table missing"
    assert _cycle(buffer, dest) == 1
    assert _row(buffer, 2)[0] == "quarantined"
    dest.refuse.clear()  # the operator fixed the destination

    block = find_block(buffer, "2")
    done = resolve(buffer, dest, block, "retry", reason="table created", actor="ana", now=LATER)
    assert (done.previous_state, done.state) == ("quarantined", "pending")
    assert _row(buffer, 2) == ("pending", "ana", "retry: table created")
    assert _cycle(buffer, dest) == 2
    assert len(dest.documents()) == 3


def test_retry_of_a_conflicted_block_keeps_the_first_copy(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    put(buffer, b1, arrived_at=T0)
    forged = _insert(Chain(), 9)
    buffer.put(forged.incoming(arrived_at=T0 + timedelta(seconds=1))[:1])
    dest = MemoryDestination()
    assert _cycle(buffer, dest) == 0
    assert buffer.unresolved_rejections() == 1
    done = resolve(
        buffer, dest, find_block(buffer, f"{chain.strand}/1"), "retry",
        reason="the first copy is the real one", actor="ana", now=LATER,
    )  # fmt: skip
    assert "1 conflicting copies acknowledged" in done.detail
    assert buffer.unresolved_rejections() == 0
    assert _cycle(buffer, dest) == 1
    assert dest.documents() == {("Person", _doc(1)): {"n": 1}}


def test_skip_moves_the_checkpoint_past_the_block_and_the_line_goes_on(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    b2 = chain.block(["CREATE TABLE Person"])
    b3 = _insert(chain, 3)
    put(buffer, b1, with_statement_text(b2, 0, "CREATE TABLE Persons"), b3)
    dest = MemoryDestination()
    assert _cycle(buffer, dest) == 1
    assert _row(buffer, 2)[0] == "quarantined"
    done = resolve(
        buffer, dest, find_block(buffer, "2"), "skip", reason="bad copy", actor="bo", now=LATER
    )
    assert done.checkpoint is not None and done.checkpoint.sequence_no == 2
    assert _row(buffer, 2) == ("skipped", "bo", "skip: bad copy")
    assert _cycle(buffer, dest) == 1  # b3 links to b2 by hash: the chain still holds
    assert set(dest.documents()) == {("Person", _doc(1)), ("Person", _doc(3))}


def test_skip_over_missing_sequence_numbers_records_them_as_a_gap(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    b4 = _insert(chain, 4, skip=2)
    put(buffer, b1, b4)
    dest = MemoryDestination()
    settle(
        buffer, dest, now=b1.commit + timedelta(seconds=60), policy=SettlePolicy(window_seconds=60)
    )
    done = resolve(
        buffer, dest, find_block(buffer, "4"), "skip", reason="not wanted", actor="bo", now=LATER
    )
    assert "2..3 recorded as a gap" in done.detail
    assert [(g.first, g.last) for g in buffer.gaps()] == [(2, 3)]


def test_a_block_not_at_the_head_of_the_line_cannot_be_skipped(buffer: SettlingBuffer) -> None:
    chain = Chain()
    put(buffer, _insert(chain, 1), _insert(chain, 2))
    with pytest.raises(InputError, match="head of the line"):
        resolve(
            buffer, MemoryDestination(), find_block(buffer, "2"), "skip", reason="x",
            actor="bo", now=LATER,
        )  # fmt: skip


def test_apply_late_applies_out_of_order_and_keeps_the_checkpoint(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    b2 = _insert(chain, 2)
    b3 = _insert(chain, 3)
    put(buffer, b1, b3)
    dest = MemoryDestination()
    assert _cycle(buffer, dest) == 2  # the gap at 2 passed by the window
    put(buffer, b2)
    assert _row(buffer, 2)[0] == "late"
    before = dest.checkpoint(b1.summary.ledger, chain.strand)
    done = resolve(
        buffer, dest, find_block(buffer, "2"), "apply-late", reason="found in the backup",
        actor="cy", now=LATER,
    )  # fmt: skip
    assert done.state == "replayed"
    assert dest.checkpoint(b1.summary.ledger, chain.strand) == before
    assert _row(buffer, 2) == ("replayed", "cy", "apply-late: found in the backup")
    assert set(dest.documents()) == {("Person", _doc(n)) for n in (1, 2, 3)}


def test_a_late_block_can_be_skipped_without_moving_the_checkpoint(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1, b2, b3 = _insert(chain, 1), _insert(chain, 2), _insert(chain, 3)
    put(buffer, b1, b3)
    dest = MemoryDestination()
    _cycle(buffer, dest)
    put(buffer, b2)
    before = dest.checkpoint(b1.summary.ledger, chain.strand)
    resolve(buffer, dest, find_block(buffer, "2"), "skip", reason="dup", actor="cy", now=LATER)
    assert _row(buffer, 2)[0] == "skipped"
    assert dest.checkpoint(b1.summary.ledger, chain.strand) == before


@pytest.mark.parametrize("action", ["retry", "apply-late"])
def test_a_decision_that_does_not_fit_the_block_state_is_refused(
    buffer: SettlingBuffer, action: str
) -> None:
    chain = Chain()
    put(buffer, _insert(chain, 1))
    with pytest.raises(InputError, match="pending"):
        resolve(
            buffer, MemoryDestination(), find_block(buffer, "1"), action,  # type: ignore[arg-type]
            reason="x", actor="bo", now=LATER,
        )  # fmt: skip


def test_resolve_waits_for_a_running_settler(buffer: SettlingBuffer) -> None:
    chain = Chain()
    put(buffer, _insert(chain, 1))
    assert buffer.acquire_lease("settler-lambda", 300, LATER)
    with pytest.raises(LeaseHeld):
        resolve(
            buffer, MemoryDestination(), find_block(buffer, "1"), "skip", reason="x",
            actor="bo", now=LATER,
        )  # fmt: skip


def test_blocks_are_found_by_sequence_strand_or_id(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    put(buffer, b1)
    bid = b1.summary.block_id
    assert find_block(buffer, "1").block_id == bid
    assert find_block(buffer, f"{chain.strand}/1").block_id == bid
    assert find_block(buffer, bid).block_id == bid
    for ref in ("7", "OtherStrand/1", "x"):
        with pytest.raises(InputError):
            find_block(buffer, ref)
