"""The real stream fixtures (../shared/fixtures/real), decoded for the settler's tests (the two
qldb-simple-demo Lambda events, KPL aggregates, through the ingest path's decoder)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from buffer.port import BufferedBlock
from journal.records import BlockSummary, RevisionDetails, record_from_ion

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "real"
EVENTS = (
    "qldb-simple-demo__streams-dynamodb__data.json",
    "qldb-simple-demo__streams-es__data.json",
)
DMV_SUMMARY = (
    "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
    "person_block_summary_ion_record.ion"
)


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared fixtures (../shared/fixtures/real) are needed")
    return path


def event_records(name: str) -> list[Any]:
    """Every stream record of a Lambda Kinesis event fixture, decoded by the ingest path
    (base64, KPL aggregate, Ion) into the typed records."""
    from buffer.port import Incoming
    from ingest.decode import decode_file

    items = decode_file(fixture(name))
    assert all(isinstance(i, Incoming) for i in items)
    return [i.record for i in items if isinstance(i, Incoming)]


def ion_values(name: str) -> list[Any]:
    return list(simpleion.loads(fixture(name).read_text(), single_value=False))


def buffered(
    summary: BlockSummary,
    revisions: Sequence[RevisionDetails] = (),
    kinds: Sequence[str] | None = None,
    *,
    arrived_at: datetime | None = None,
) -> BufferedBlock:
    """A ``BufferedBlock`` as a buffer would hand it to the settler."""
    return BufferedBlock(
        summary=summary,
        revisions={r.document_id: r for r in revisions},
        statement_kinds=tuple(kinds) if kinds is not None else (),
        state="pending",
        arrived_at=arrived_at,
    )


def real_block(name: str) -> BufferedBlock:
    """The block of one qldb-simple-demo event, with its revision."""
    records = event_records(name)
    summaries = [r for r in records if isinstance(r, BlockSummary)]
    revisions = [r for r in records if isinstance(r, RevisionDetails)]
    assert len(summaries) == 1
    return buffered(summaries[0], revisions)


DMV_REVISION = (
    "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
    "person_revision_details_ion_record.ion"
)
# The document the DMV sample's literal INSERT wrote, read from its statement text.
DMV_DOCUMENT = (
    '{FirstName: "Testing new 600", LastName: "Lewis", DOB: 1963-08-19T, GovId: "LEWISR261LL", '
    'GovIdType: "Driver License", Address: "1719 University Street, Seattle, WA, 98109"}'
)


def dmv_values(*, collage: bool = False) -> list[Any]:
    """The DMV sample block: its real BLOCK_SUMMARY (literal ``INSERT INTO Person << ... >>``)
    and a REVISION_DETAILS. The fixture's revision is a collage (INDEX.md #8: its data is another
    document's); with ``collage=False`` its data is replaced by the document the statement
    inserted, and that document with the fixture's metadata hashes exactly to the real revision
    hash in the block summary (checked by the tests), so the block is complete and genuine."""
    summary = ion_values(DMV_SUMMARY)[0]
    revision = ion_values(DMV_REVISION)[0]
    if not collage:
        revision["payload"]["revision"]["data"] = simpleion.loads(DMV_DOCUMENT)
        revision = simpleion.loads(simpleion.dumps(revision))
    return [summary, revision]


def dmv_block(*, collage: bool = False) -> BufferedBlock:
    summary, revision = (record_from_ion(v) for v in dmv_values(collage=collage))
    assert isinstance(summary, BlockSummary) and isinstance(revision, RevisionDetails)
    return buffered(summary, [revision])
