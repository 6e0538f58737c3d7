"""Replay planning (DESIGN.md rules 2 and 7): statements or revisions, redactions, parts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from settler_blocks import Chain, Rev
from settler_realdata import DMV_SUMMARY, EVENTS, buffered, ion_values, real_block

from destination.port import Limits, RevisionOp, StatementOp
from journal.records import BlockSummary, record_from_ion
from settler.plan import is_ddl, plan_block

UNBOUNDED = Limits()


def _doc(n: int) -> str:
    return f"Doc{n:019d}"


@pytest.mark.parametrize("name", EVENTS)
def test_the_real_parameterized_blocks_replay_from_their_revisions(name: str) -> None:
    block = real_block(name)
    plan = plan_block(block, UNBOUNDED)
    assert plan.quarantine is None and plan.mode == "revisions"
    (replay,) = plan.replays
    (op,) = replay.ops
    assert isinstance(op, RevisionOp)
    ((doc_id, rev),) = block.revisions.items()
    assert (op.document_id, op.version, op.table_name) == (doc_id, 0, "BicycleLicence")
    assert op.data is rev.data  # the Ion value itself, never text
    assert replay.checkpoint().sequence_no == block.summary.address.sequence_no
    assert replay.checkpoint().part is None


def test_the_real_literal_sample_replays_as_a_statement() -> None:
    summary = record_from_ion(ion_values(DMV_SUMMARY)[0])
    assert isinstance(summary, BlockSummary)
    # The DMV collage's revision does not belong to this statement (INDEX.md #8): the
    # statement alone is planned here, its kind decided by the ledger's classifier.
    block = buffered(dataclasses.replace(summary, revision_summaries=()))
    plan = plan_block(block, UNBOUNDED)
    assert plan.mode == "statements"
    (replay,) = plan.replays
    assert replay.ops == (StatementOp(text=summary.statements[0].text, index=0),)


def test_selects_are_skipped_and_ddl_ddl_id_run_as_statements() -> None:
    chain = Chain()
    built = chain.block(
        [
            "CREATE TABLE Person",
            "SELECT * FROM Person",
            "INSERT INTO Person << {'name': 'a'} >>",
            'UNDROP TABLE "tblPersonXXXXXXXXXXXXX"',
        ],
        [Rev("Person", _doc(1), 0, {"name": "a"})],
    )
    plan = plan_block(built.buffered(), UNBOUNDED)
    assert plan.mode == "statements"
    (replay,) = plan.replays
    assert [op.index for op in replay.ops if isinstance(op, StatementOp)] == [0, 2, 3]
    # The revisions ride along so the destination can map the document the INSERT wrote.
    assert [r.document_id for r in replay.revisions] == [_doc(1)]
    assert dict(replay.table_names) == {"tblPersonXXXXXXXXXXXXX": "Person"}


@pytest.mark.parametrize(
    "statement",
    [
        ("UPDATE Person AS p SET p.a = ? WHERE p.name = 'a'", [1]),
        "UPDATE Person AS p BY pid SET p.a = 1 WHERE pid = 'x'",
        "UPDATE Person AS p SET p.at = utcnow() WHERE p.name = 'a'",
    ],
)
def test_a_block_with_any_statement_not_replayable_from_text_replays_revisions(
    statement: Any,
) -> None:
    chain = Chain()
    built = chain.block(
        ["CREATE INDEX ON Person (name)", "INSERT INTO Person << {'name': 'a'} >>", statement],
        [Rev("Person", _doc(1), 0, {"name": "a", "a": 1}), Rev("Person", _doc(2), 3, None)],
    )
    plan = plan_block(built.buffered(), UNBOUNDED)
    assert plan.mode == "revisions"
    (replay,) = plan.replays
    first, *rest = replay.ops
    # The DDL still runs as a statement, before the revisions.
    assert first == StatementOp(text="CREATE INDEX ON Person (name)", index=0)
    assert [(op.document_id, op.version, op.data) for op in rest if isinstance(op, RevisionOp)] == [
        (_doc(1), 0, {"name": "a", "a": 1}),
        (_doc(2), 3, None),  # a deletion
    ]
    assert (plan.statements, plan.revisions) == (1, 2)


def test_a_redacted_revision_replays_as_redacted_from_revisions() -> None:
    """Issue 16 (over DESIGN.md rule 7's quarantine): replayed from its revisions, marked."""
    chain = Chain()
    built = chain.block(
        [("INSERT INTO Person VALUE {'name': 'a'}", [])],
        [Rev("Person", _doc(1), 0, {"name": "a"}, redacted=True)],
    )
    block = built.buffered()
    plan = plan_block(block, UNBOUNDED)
    assert plan.quarantine is None and plan.mode == "revisions"
    (replay,) = plan.replays
    (op,) = replay.ops
    assert isinstance(op, RevisionOp) and op.redacted and op.data is None
    assert op.data_hash == block.revisions[_doc(1)].data_hash


def test_a_block_redacting_an_older_revision_changes_no_document() -> None:
    chain = Chain()
    built = chain.block(
        [("EXEC REDACT_REVISION ?, ?, ?", ["Person", _doc(1), 0])],
        redactions=[
            {
                "blockAddress": {"strandId": chain.strand, "sequenceNo": 1},
                "tableId": "tblPersonXXXXXXXXXXXXX",
                "documentId": _doc(1),
                "version": 0,
            }
        ],
    )
    plan = plan_block(built.buffered(), UNBOUNDED)
    assert plan.quarantine is None
    (replay,) = plan.replays
    assert replay.ops == () and replay.revisions == ()


def test_a_block_over_the_transaction_limit_is_split_into_resumable_parts() -> None:
    chain = Chain()
    revisions = [Rev("Person", _doc(n), 0, {"n": n}) for n in range(7)]
    built = chain.block(
        ["CREATE TABLE Person", *[f"INSERT INTO Person << {{'n': {n}}} >>" for n in range(7)]],
        revisions,
    )
    # 3 documents per transaction, one kept for the checkpoint: 2 revisions per part.
    plan = plan_block(built.buffered(), Limits(documents=3))
    assert plan.split and plan.mode == "revisions"
    assert [r.part for r in plan.replays] == [0, 1, 2, 3]
    assert {r.parts for r in plan.replays} == {4}
    ops = [op for r in plan.replays for op in r.ops]
    assert ops[0] == StatementOp(text="CREATE TABLE Person", index=0)
    assert [op.document_id for op in ops[1:] if isinstance(op, RevisionOp)] == [
        _doc(n) for n in range(7)
    ]
    assert [len(r.ops) for r in plan.replays] == [3, 2, 2, 1]
    checkpoints = [r.checkpoint() for r in plan.replays]
    assert [c.part for c in checkpoints] == [0, 1, 2, None]  # the last part completes the block
    assert {c.sequence_no for c in checkpoints} == {built.sequence_no}
    # Deterministic: the same block plans into the same parts (a resumed cycle skips parts).
    assert plan_block(built.buffered(), Limits(documents=3)) == plan


def test_the_byte_limit_splits_too() -> None:
    chain = Chain()
    revisions = [Rev("Person", _doc(n), 0, {"blob": "x" * 1000}) for n in range(4)]
    built = chain.block([("INSERT INTO Person ?", [r.data]) for r in revisions], revisions)
    plan = plan_block(built.buffered(), Limits(bytes=2600))
    assert [len(r.ops) for r in plan.replays] == [2, 2]


def test_a_block_that_fits_is_whole() -> None:
    chain = Chain()
    revisions = [Rev("Person", _doc(n), 0, {"n": n}) for n in range(2)]
    built = chain.block(["INSERT INTO Person << {'n': 0}, {'n': 1} >>"], revisions)
    plan = plan_block(built.buffered(), Limits(documents=3, bytes=4_000_000))
    assert not plan.split and plan.mode == "statements"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CREATE TABLE T", True),
        ('  -- comment\n drop index "x" on T', True),
        ('/* c */UNDROP TABLE "x"', True),
        ("INSERT INTO T << {} >>", False),
        ("", False),
    ],
)
def test_ddl_is_recognised_by_its_first_word(text: str, expected: bool) -> None:
    assert is_ddl(text) is expected
