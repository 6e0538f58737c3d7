"""The settle cycle (DESIGN.md rules 3-5) with an injected clock, on a real SQLite buffer file.

The destination here is ``destination.memory.MemoryDestination``, the in-memory fake shipped in
the package (it honours the port's checkpoint compare-and-set and all-or-nothing apply); the
end-to-end tests replay into the embedded ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import FrozenInstanceError, replace
from datetime import datetime, timedelta

import pytest
from settler_blocks import T0, Built, Chain, Rev, put, with_statement_text

from buffer.port import Gap, Rejection, SettlingBuffer
from destination.memory import MemoryDestination
from destination.port import Checkpoint, Limits
from runtime.errors import LeaseHeld, TransientError
from settler.cycle import SettlePolicy, settle
from settler.cycle_report import JSON_KEYS, SettleReport
from settler.operator import resolve, set_start

WINDOW = 60.0
POLICY = SettlePolicy(window_seconds=WINDOW)


def _doc(n: int) -> str:
    return f"Doc{n:019d}"


def _insert(chain: Chain, n: int, **kw: object) -> Built:
    """A block inserting document n with a parameterized statement (replayed from revisions)."""
    return chain.block(
        [("INSERT INTO Person ?", [{"n": n}])], [Rev("Person", _doc(n), 0, {"n": n})], **kw
    )  # type: ignore[arg-type]


def _settle(
    buffer: SettlingBuffer,
    dest: MemoryDestination,
    now: datetime,
    policy: SettlePolicy = POLICY,
    **context: object,
) -> SettleReport:
    return settle(buffer, dest, now=now, policy=policy, **context)  # type: ignore[arg-type]


def _states(buffer: SettlingBuffer) -> dict[int, str]:
    return {r.sequence_no: r.state for r in buffer.blocks()}


def _after(built: Built, seconds: float = WINDOW) -> datetime:
    return built.commit + timedelta(seconds=seconds)


def test_the_report_has_exactly_the_settle_json_keys(buffer: SettlingBuffer) -> None:
    report = _settle(buffer, MemoryDestination(), T0)
    assert tuple(report.to_json()) == JSON_KEYS
    assert set(report.to_json()["replayed"]) == {"blocks", "statements", "revisions"}
    assert set(report.to_json()["lag_ms"]) == {"p50", "p99", "max"}


def test_a_block_is_held_until_its_commit_plus_the_window(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1, b2 = _insert(chain, 1), _insert(chain, 2)
    put(buffer, b2, b1)
    dest = MemoryDestination()

    report = _settle(buffer, dest, _after(b1, WINDOW - 0.001))
    assert report.blocks == 0 and report.held_by_window == 2
    assert dest.checkpoint(b1.summary.ledger, chain.strand) is None

    report = _settle(buffer, dest, _after(b1))  # b1 settled, b2 one step younger
    assert (report.blocks, report.held_by_window) == (1, 1)
    assert report.lag_ms == [WINDOW * 1000]

    report = _settle(buffer, dest, _after(b2))
    assert report.blocks == 1 and report.revisions == 1
    assert _states(buffer) == {1: "replayed", 2: "replayed"}
    assert dest.documents() == {("Person", _doc(1)): {"n": 1}, ("Person", _doc(2)): {"n": 2}}
    (cp,) = report.checkpoints
    assert (cp.sequence_no, cp.block_hash) == (2, b2.summary.block_hash)


def test_early_release_takes_the_next_block_by_chain_proof(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1, b2, b3 = _insert(chain, 1), _insert(chain, 2), _insert(chain, 3, skip=1)
    put(buffer, b1, b2, b3)
    dest = MemoryDestination()
    # Without a checkpoint nothing proves the first block is next: it waits for the window.
    report = _settle(buffer, dest, b2.commit, replace(POLICY, early_release=True))
    assert report.blocks == 0 and report.early_released == 0
    report = _settle(buffer, dest, _after(b1), replace(POLICY, early_release=True))
    # b1 by the window, b2 at once by the chain; b3 follows a gap: only the window passes it.
    assert (report.blocks, report.early_released, report.held_by_window) == (2, 1, 1)
    # Early release off: the same state holds b3 likewise.
    assert _settle(buffer, dest, _after(b2)).blocks == 0


def test_early_release_after_an_operator_start(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b0 = _insert(chain, 0)
    b1 = _insert(chain, 1)
    put(buffer, b1)
    dest = MemoryDestination()
    start = Checkpoint(
        ledger=b0.summary.ledger,
        strand_id=chain.strand,
        sequence_no=b0.sequence_no,
        block_hash=b0.summary.block_hash,
    )
    set_start(dest, start)
    report = _settle(buffer, dest, b1.commit, replace(POLICY, early_release=True))
    assert (report.blocks, report.early_released) == (1, 1)


def test_a_gap_waits_for_the_window_is_recorded_and_a_block_inside_it_is_late(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    missing = _insert(chain, 2)
    b3 = _insert(chain, 3)
    put(buffer, b1, b3)
    dest = MemoryDestination()

    report = _settle(buffer, dest, _after(b1))
    assert (report.blocks, report.gaps_passed, report.held_by_window) == (1, 0, 1)
    report = _settle(buffer, dest, _after(b3))
    assert (report.blocks, report.gaps_passed) == (1, 1)
    (gap,) = buffer.gaps()
    assert (gap.first, gap.last) == (2, 2)

    put(buffer, missing)  # arrives after the gap was passed: late, kept, not applied
    report = _settle(buffer, dest, _after(missing, 3600))
    assert report.blocks == 0 and report.late == 1 and report.needs_operator
    assert _states(buffer)[2] == "late"
    assert ("Person", _doc(2)) not in dest.documents()


def test_a_gap_is_not_passed_while_rejected_records_are_unresolved(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    b3 = _insert(chain, 3, skip=1)
    put(buffer, b1, b3)
    buffer.put([], [Rejection(origin="shard/1", raw=b"\x00garbage", kind="ion", reason="bad")])
    dest = MemoryDestination()
    report = _settle(buffer, dest, _after(b3))
    assert report.blocks == 1 and report.gaps_passed == 0
    assert report.halted and "rejected" in (report.halt_reason or "")
    assert buffer.gaps() == []
    report = _settle(buffer, dest, _after(b3), replace(POLICY, allow_gaps_with_rejections=True))
    assert (report.blocks, report.gaps_passed) == (1, 1)


def test_a_digest_mismatch_halts_at_that_block_and_nothing_after_it_replays(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    b1 = chain.block(["CREATE TABLE Person"])
    b2 = chain.block(["INSERT INTO Person << {'n': 2} >>"], [Rev("Person", _doc(2), 0, {"n": 2})])
    b3 = chain.block(["INSERT INTO Person << {'n': 3} >>"], [Rev("Person", _doc(3), 0, {"n": 3})])
    tampered = with_statement_text(b2, 0, "INSERT INTO Person << {'n': 9} >>")
    put(buffer, b1, tampered, b3)
    dest = MemoryDestination()
    report = _settle(buffer, dest, _after(b3))
    assert report.blocks == 1 and report.halted
    assert report.halt_reason is not None and "statementDigest" in report.halt_reason
    assert report.quarantined == 1 and report.digests_verified == 1
    assert _states(buffer) == {1: "replayed", 2: "quarantined", 3: "pending"}
    assert [text for _, _, text in dest.executed] == ["CREATE TABLE Person"]
    # The next cycle stops at the quarantined block again.
    again = _settle(buffer, dest, _after(b3))
    assert again.blocks == 0 and again.halted and "quarantined" in (again.halt_reason or "")


def test_literal_digests_are_counted_verified(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = chain.block(["CREATE TABLE Person", "SELECT * FROM Person"])
    b2 = _insert(chain, 2)
    put(buffer, b1, b2)
    report = _settle(buffer, MemoryDestination(), _after(b2))
    assert report.to_json()["digests"] == {"verified": 2, "unverified": 1}
    assert report.unverified_reasons == {"parameters not streamed": 1}


def test_a_block_missing_a_revision_holds_the_line(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    b2 = _insert(chain, 2)
    buffer.put([*b1.incoming(), b2.incoming()[0]])  # b2's revision has not arrived
    dest = MemoryDestination()
    report = _settle(buffer, dest, _after(b1))
    assert report.blocks == 1 and not report.halted
    report = _settle(buffer, dest, _after(b2))  # older than the window: reported
    assert report.blocks == 0 and report.halted
    assert report.waiting == [(b2.summary.block_id, (_doc(2),))]
    buffer.put(b2.incoming()[1:])
    assert _settle(buffer, dest, _after(b2)).blocks == 1


def test_a_conflicted_block_is_quarantined(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    put(buffer, b1, arrived_at=T0)
    other = Chain()
    forged = _insert(other, 9)  # same address (sequence 1), different content
    buffer.put(forged.incoming(arrived_at=T0 + timedelta(seconds=5))[:1])
    report = _settle(buffer, MemoryDestination(), _after(b1))
    assert report.blocks == 0 and report.quarantined == 1
    assert "conflict" in (report.halt_reason or "")


def test_a_replay_error_in_a_group_applies_the_blocks_before_it(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 6)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    dest.refuse[blocks[2].summary.block_id] = "table Person is gone"
    report = _settle(buffer, dest, _after(blocks[-1]))
    assert report.blocks == 2 and report.halted
    assert _states(buffer) == {1: "replayed", 2: "replayed", 3: "quarantined", 4: "pending",
                               5: "pending"}  # fmt: skip
    assert "table Person is gone" in (report.halt_reason or "")
    assert set(dest.documents()) == {("Person", _doc(1)), ("Person", _doc(2))}


def test_a_gap_after_a_failing_block_of_a_group_is_withdrawn_not_left_passed(
    buffer: SettlingBuffer,
) -> None:
    """Gaps do not cut a group: the group's gaps are recorded before its transaction. When a block
    before a gap fails, the gap was never passed, so it is withdrawn: its block, arriving later,
    is pending and replays in order, not late."""
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 7)]
    missing = blocks[3]
    put(buffer, *(b for b in blocks if b is not missing))
    dest = MemoryDestination()
    dest.refuse[blocks[1].summary.block_id] = "table Person is gone"
    report = _settle(buffer, dest, _after(blocks[-1]))
    assert report.blocks == 1 and report.halted and report.gaps_passed == 0
    assert list(buffer.gaps()) == []
    put(buffer, missing)
    assert _states(buffer)[4] == "pending"

    # Resolved, the line replays in order, the late-found block included, without a gap.
    del dest.refuse[blocks[1].summary.block_id]
    quarantined = buffer.get_block(blocks[1].summary.block_id)
    assert quarantined is not None
    now = _after(blocks[-1])
    resolve(buffer, dest, quarantined, "retry", reason="table restored", actor="op", now=now)
    again = _settle(buffer, dest, _after(blocks[-1]))
    assert again.blocks == 5 and again.gaps_passed == 0 and not again.halted
    assert set(_states(buffer).values()) == {"replayed"}


def test_the_gaps_of_a_group_are_recorded_in_one_write(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n, skip=1 if n % 3 == 0 else 0) for n in range(1, 10)]
    put(buffer, *blocks)
    calls: list[int] = []
    record = buffer.record_gaps

    def counting(gaps: Sequence[Gap]) -> None:
        calls.append(len(gaps))
        record(gaps)

    buffer.record_gaps = counting  # type: ignore[method-assign]
    report = _settle(buffer, MemoryDestination(), _after(blocks[-1]))
    assert report.blocks == 9 and report.gaps_passed == 3
    assert calls == [3] and len(buffer.gaps()) == 3


def test_several_blocks_share_one_destination_transaction(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 8)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    report = _settle(buffer, dest, _after(blocks[-1]), replace(POLICY, group_size=3))
    assert report.blocks == 7 and dest.apply_calls == 3


def test_a_destination_limit_splits_groups_and_blocks(buffer: SettlingBuffer) -> None:
    chain = Chain()
    small = [_insert(chain, n) for n in range(1, 4)]
    big = chain.block(
        [("INSERT INTO Person ?", [{"n": n}]) for n in range(10, 15)],
        [Rev("Person", _doc(n), 0, {"n": n}) for n in range(10, 15)],
    )
    put(buffer, *small, big)
    dest = MemoryDestination(Limits(documents=3))
    report = _settle(buffer, dest, _after(big))
    assert report.blocks == 4 and report.split_blocks == 1
    # 2 small blocks per transaction (one document kept for the checkpoint), then 1, then the
    # big block in 3 parts of at most 2 documents.
    assert [len(t) for t in dest.transactions] == [2, 1, 1, 1, 1]
    assert [part for _, part in dest.applied[-3:]] == [0, 1, 2]
    assert len(dest.documents()) == 8


def test_a_moved_checkpoint_is_re_read_and_nothing_applied_twice(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 4)]
    put(buffer, *blocks)
    dest = MemoryDestination()

    def another_writer(step: str) -> None:
        # Another settler applies block 1 while this one is reading: its first apply fails the
        # compare-and-set, it re-reads the checkpoint and goes on from there.
        if step == "applying" and dest.checkpoint(blocks[0].summary.ledger, chain.strand) is None:
            from settler.plan import plan_block

            block = buffer.get_block(blocks[0].summary.block_id)
            assert block is not None
            dest.apply(plan_block(block, dest.limits).replays, None)

    report = _settle(buffer, dest, _after(blocks[-1]), faults=another_writer)
    assert report.blocks == 2 and report.repaired == 1
    assert [b for b, _ in dest.applied] == [b.summary.block_id for b in blocks]
    assert _states(buffer) == {1: "replayed", 2: "replayed", 3: "replayed"}


def test_a_lost_commit_answer_is_not_applied_twice(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 4)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    dest.lose_answers = 1
    with pytest.raises(TransientError):
        _settle(buffer, dest, _after(blocks[-1]))
    assert _states(buffer) == {1: "pending", 2: "pending", 3: "pending"}
    report = _settle(buffer, dest, _after(blocks[-1]))
    assert report.blocks == 0 and report.repaired == 3
    assert [b for b, _ in dest.applied] == [b.summary.block_id for b in blocks]
    assert _states(buffer) == {1: "replayed", 2: "replayed", 3: "replayed"}


def test_another_settler_holding_the_lease_stops_the_cycle(buffer: SettlingBuffer) -> None:
    assert buffer.acquire_lease("other", 60, T0)
    with pytest.raises(LeaseHeld):
        _settle(buffer, MemoryDestination(), T0 + timedelta(seconds=30))
    assert _settle(buffer, MemoryDestination(), T0 + timedelta(seconds=61)).blocks == 0


def test_the_lease_is_renewed_as_the_cycle_runs_and_a_lost_lease_stops_its_writes(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 7)]
    put(buffer, *blocks)
    now = _after(blocks[-1])
    ticks = iter(range(0, 10_000, 25))  # each look at the clock: 25 s later

    renewals: list[tuple[str, datetime]] = []
    acquire = buffer.acquire_lease

    def spy(owner: str, ttl: float, at: datetime) -> bool:
        renewals.append((owner, at))
        return acquire(owner, ttl, at)

    buffer.acquire_lease = spy  # type: ignore[method-assign]
    dest = MemoryDestination()
    policy = replace(POLICY, lease_seconds=120, group_size=2)
    report = _settle(buffer, dest, now, policy, owner="me", clock=lambda: next(ticks))
    assert report.blocks == 6
    # Taken at now; before each of the three destination transactions (at 25, 50 and 75 s) it is
    # renewed once a third of it (40 s) has passed since the last renewal: at 50 s only, as of
    # the cycle's clock.
    assert renewals == [("me", now), ("me", now + timedelta(seconds=50))]

    # Another settler takes the lease after it ran out: the cycle stops before writing again.
    more = [_insert(chain, n) for n in range(7, 11)]
    put(buffer, *more)
    later = _after(more[-1])
    ticks = iter(range(0, 10_000, 50))
    state = {"calls": 0}

    def stolen(owner: str, ttl: float, at: datetime) -> bool:
        state["calls"] += 1
        if state["calls"] == 2:  # the first renewal: someone else holds it by now
            acquire("thief", 600, at - timedelta(seconds=1))
        return acquire(owner, ttl, at)

    buffer.acquire_lease = stolen  # type: ignore[method-assign]
    with pytest.raises(TransientError, match="thief took it"):
        policy = replace(POLICY, lease_seconds=30, group_size=2)
        _settle(buffer, dest, later, policy, owner="me", clock=lambda: next(ticks))
    assert _states(buffer)[7] == "pending" and len(dest.documents()) == 6


def test_the_cycle_stops_at_the_deadline_and_the_next_goes_on(buffer: SettlingBuffer) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 6)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    calls = 0

    def deadline() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    report = _settle(
        buffer, dest, _after(blocks[-1]), replace(POLICY, group_size=1), deadline=deadline
    )
    assert report.deadline_reached and 0 < report.blocks < 5
    rest = _settle(buffer, dest, _after(blocks[-1]))
    assert report.blocks + rest.blocks == 5


def test_a_destination_behind_the_buffer_marks_gets_the_blocks_again(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 4)]
    put(buffer, *blocks)
    assert _settle(buffer, MemoryDestination(), _after(blocks[-1])).blocks == 3
    # A new, empty replica on the same buffer: the buffer's marks are not trusted over it.
    fresh = MemoryDestination()
    report = _settle(buffer, fresh, _after(blocks[-1]))
    assert report.blocks == 3 and len(fresh.documents()) == 3
    assert _states(buffer) == {1: "replayed", 2: "replayed", 3: "replayed"}


def test_retention_purges_replayed_blocks_older_than_the_age_and_keeps_headers(
    buffer: SettlingBuffer,
) -> None:
    chain = Chain()
    old, young = _insert(chain, 1), _insert(chain, 2, commit=T0 + timedelta(days=3))
    put(buffer, old, young)
    dest = MemoryDestination()
    now = _after(young)
    report = _settle(buffer, dest, now, replace(POLICY, retention=timedelta(days=2)))
    assert report.blocks == 2
    assert report.purged == 1  # only the block committed more than two days before `now`
    rows = {r.sequence_no: r for r in buffer.blocks()}
    assert [r.state for r in rows.values()] == ["replayed", "replayed"]  # headers stay
    assert buffer.stats(now).revisions == 1
    # A re-delivery of the purged block is still a duplicate, and nothing is replayed again.
    report_again = buffer.put(list(old.incoming()))
    assert report_again.duplicates == report_again.records
    assert sum(report_again.stored.values()) == 0
    assert _settle(buffer, dest, now, replace(POLICY, retention=timedelta(days=2))).blocks == 0


def test_without_retention_nothing_is_purged(buffer: SettlingBuffer) -> None:
    chain = Chain()
    b1 = _insert(chain, 1)
    put(buffer, b1)
    report = _settle(buffer, MemoryDestination(), _after(b1, 10 * 86400))
    assert report.blocks == 1 and report.purged == 0
    assert buffer.stats(_after(b1)).revisions == 1


def test_the_policy_is_one_frozen_value_with_sizes_of_at_least_one(buffer: SettlingBuffer) -> None:
    with pytest.raises(FrozenInstanceError):
        POLICY.window_seconds = 0  # type: ignore[misc]
    tiny = SettlePolicy(window_seconds=WINDOW, group_size=0, page_size=-3)
    assert (tiny.group_size, tiny.page_size) == (1, 1)
    chain = Chain()
    blocks = [_insert(chain, n) for n in range(1, 4)]
    put(buffer, *blocks)
    dest = MemoryDestination()
    report = _settle(buffer, dest, _after(blocks[-1]), tiny)
    assert report.blocks == 3 and dest.apply_calls == 3  # one block per transaction
