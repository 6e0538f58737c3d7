"""Verification before replay (DESIGN.md rule 6) on the real fixtures, and on tampered copies."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from settler_realdata import DMV_SUMMARY, EVENTS, buffered, dmv_block, ion_values, real_block

import settler.block_checks as verify_module
from buffer.port import BufferedBlock
from destination.port import Checkpoint
from journal.records import BlockSummary, record_from_ion
from ledger.parser import parse
from settler.block_checks import (
    IONHASH_UNAVAILABLE,
    PARAMETERS_NOT_STREAMED,
    has_parameters,
    statement_hash,
    verify_block,
)


def _dmv() -> BufferedBlock:
    summary = record_from_ion(ion_values(DMV_SUMMARY)[0])
    assert isinstance(summary, BlockSummary)
    return buffered(summary)


def _with_statement_text(block: BufferedBlock, index: int, text: str) -> BufferedBlock:
    s = block.summary
    statements = tuple(
        dataclasses.replace(st, text=text) if st.index == index else st for st in s.statements
    )
    return dataclasses.replace(block, summary=dataclasses.replace(s, statements=statements))


@pytest.mark.parametrize("name", EVENTS)
def test_the_real_parameterized_blocks_verify(name: str) -> None:
    result = verify_block(real_block(name))
    assert result.ok, result.failure
    assert result.revisions_checked == 1  # the revision's data and metadata hash to its hash
    assert result.digests_verified == 0
    assert [(u.index, u.reason) for u in result.unverified] == [
        (0, PARAMETERS_NOT_STREAMED),
        (1, PARAMETERS_NOT_STREAMED),
        (2, PARAMETERS_NOT_STREAMED),
    ]


def test_the_real_literal_statement_digest_verifies() -> None:
    block = _dmv()
    statement = block.summary.statements[0]
    assert statement.text.startswith("INSERT INTO Person <<")
    assert statement_hash(statement.text) == statement.digest
    result = verify_block(block)
    assert result.ok, result.failure
    assert (result.digests_verified, result.digests_unverified) == (1, 0)


def test_one_changed_character_of_a_statement_fails_verification() -> None:
    block = _dmv()
    text = block.summary.statements[0].text
    tampered = _with_statement_text(block, 0, text.replace("Lewis", "Lewie"))
    result = verify_block(tampered)
    assert not result.ok
    assert result.failure is not None
    assert block.block_id in result.failure
    assert "statement 0" in result.failure and "statementDigest" in result.failure


def test_changed_revision_data_fails_verification() -> None:
    block = real_block(EVENTS[0])
    ((doc_id, rev),) = block.revisions.items()
    from amazon.ion import simpleion

    data = simpleion.loads(simpleion.dumps(rev.data))
    data["PenaltyPoints"] = 3
    tampered = dataclasses.replace(block, revisions={doc_id: dataclasses.replace(rev, data=data)})
    result = verify_block(tampered)
    assert not result.ok
    assert result.failure is not None and doc_id in result.failure


@pytest.mark.parametrize(
    "change",
    [
        {"version": 1},
        {"tx_time": "+1ms"},
        {"tx_time": "second precision"},
    ],
)
def test_changed_revision_metadata_fails_verification(change: dict[str, object]) -> None:
    """The metadata hash (``ledger.hashing.metadata_hash``, computed without building the struct)
    still catches every field of it: the version, the instant and the precision of txTime."""
    from datetime import timedelta

    from amazon.ion.core import Timestamp, TimestampPrecision

    block = real_block(EVENTS[0])
    ((doc_id, rev),) = block.revisions.items()
    meta = rev.metadata
    assert verify_block(block).ok
    if "version" in change:
        meta = dataclasses.replace(meta, version=meta.version + 1)
    elif change["tx_time"] == "+1ms":
        meta = dataclasses.replace(meta, tx_time=meta.tx_time + timedelta(milliseconds=1))
    else:
        t = meta.tx_time
        second = Timestamp(
            t.year, t.month, t.day, t.hour, t.minute, t.second, tzinfo=t.tzinfo,
            precision=TimestampPrecision.SECOND,
        )  # fmt: skip
        meta = dataclasses.replace(meta, tx_time=second)
    changed = dataclasses.replace(rev, metadata=meta)
    tampered = dataclasses.replace(block, revisions={doc_id: changed})
    result = verify_block(tampered)
    assert not result.ok
    assert result.failure is not None and doc_id in result.failure
    assert "hash to" in result.failure


def test_a_revision_hash_not_in_the_summary_fails() -> None:
    block = real_block(EVENTS[0])
    ((doc_id, rev),) = block.revisions.items()
    other = bytes(32)
    tampered = dataclasses.replace(block, revisions={doc_id: dataclasses.replace(rev, hash=other)})
    result = verify_block(tampered, check_content=False)
    assert result.failure is not None and "revisionSummaries" in result.failure


def test_a_changed_entries_hash_list_fails() -> None:
    block = real_block(EVENTS[1])
    s = block.summary
    entries = (bytes(32), *s.entries_hash_list[1:])
    result = verify_block(
        dataclasses.replace(block, summary=dataclasses.replace(s, entries_hash_list=entries))
    )
    assert result.failure is not None and "entriesHash" in result.failure


def _checkpoint(block: BufferedBlock, *, sequence_no: int, block_hash: bytes) -> Checkpoint:
    s = block.summary
    return Checkpoint(
        ledger=s.ledger,
        strand_id=s.address.strand_id,
        sequence_no=sequence_no,
        block_hash=block_hash,
    )


def test_the_chain_link_to_an_adjacent_checkpoint_is_checked() -> None:
    block = real_block(EVENTS[0])
    seq = block.summary.address.sequence_no
    linked = verify_block(
        block, _checkpoint(block, sequence_no=seq - 1, block_hash=block.summary.previous_block_hash)
    )
    assert linked.ok and linked.chain_checked
    broken = verify_block(block, _checkpoint(block, sequence_no=seq - 1, block_hash=bytes(32)))
    assert broken.failure is not None and "does not link" in broken.failure
    # Not adjacent (a gap before it): nothing to link, the block still verifies on its own.
    far = verify_block(block, _checkpoint(block, sequence_no=seq - 2, block_hash=bytes(32)))
    assert far.ok and not far.chain_checked


def test_without_ionhash_every_literal_digest_is_counted_unverified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Simulates an environment where ionhash does not import (nothing real can stand in for it).
    monkeypatch.setattr(verify_module, "_ion_hasher", lambda: None)
    result = verify_block(_dmv())
    assert result.ok
    assert [(u.index, u.reason) for u in result.unverified] == [(0, IONHASH_UNAVAILABLE)]
    assert result.digests_verified == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INSERT INTO T ?", True),
        ("UPDATE T AS t SET t.a = ? WHERE t.b = 1", True),
        ("SELECT * FROM T WHERE a = 'what?'", False),
        ('SELECT "odd?name" FROM T', False),
        ('INSERT INTO T `{a: "?"}`', False),
        ("SELECT * FROM T -- why?\nWHERE a = 1", False),
        ("SELECT * FROM T /* ? */ WHERE a = ?", True),
        ("SELECT * FROM T WHERE a = 'it''s?' AND b = ?", True),
    ],
)
def test_placeholders_are_found_outside_literals_and_comments(text: str, expected: bool) -> None:
    assert has_parameters(text) is expected


# Pieces of statements where "?" is text (a string with an escaped quote, a quoted name, a
# backtick Ion literal, comments) or a placeholder: the parser's own count of parameters says
# which statements have one.
_OPERANDS = st.sampled_from(
    ["?", "'it''s?'", "'plain'", "'?'", '"odd?"', '`{f: "?"}`', "`2020T`", "1", "t.b"]
)
_GAPS = st.sampled_from([" ", " -- why?\n ", " /* ? */ ", "\n", " /* '?' */ ", " -- '\n "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_GAPS, _OPERANDS, _GAPS), min_size=1, max_size=4))
def test_placeholders_found_are_the_parameters_the_parser_counts(
    conditions: list[tuple[str, str, str]],
) -> None:
    where = " AND ".join(f"{before}t.a = {operand}{after}" for before, operand, after in conditions)
    text = f"SELECT * FROM T AS t WHERE{where}"
    assert has_parameters(text) is (parse(text).parameters > 0), text


def test_the_dmv_collage_revision_fails_and_the_statements_own_document_verifies() -> None:
    collage = verify_block(dmv_block(collage=True))
    assert collage.failure is not None and "not the revision hash" in collage.failure
    genuine = verify_block(dmv_block())
    assert genuine.ok, genuine.failure
    assert (genuine.revisions_checked, genuine.digests_verified) == (1, 1)
