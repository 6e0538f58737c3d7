"""The real stream fixtures (../shared/fixtures/real), decoded for the settler's tests.

The two qldb-simple-demo Lambda events are KPL aggregates; a tiny protobuf split reads them here
so these tests do not depend on the ingest path (which has its own strict decoder and tests).
"""

from __future__ import annotations

import base64
import json
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
KPL_MAGIC = b"\xf3\x89\x9a\xc2"


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared fixtures (../shared/fixtures/real) are needed")
    return path


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, bytes | int]]:
    out: list[tuple[int, bytes | int]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            length, i = _varint(buf, i)
            out.append((number, buf[i : i + length]))
            i += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def kpl_split(data: bytes) -> list[bytes]:
    """The user records of a KPL aggregate (magic, protobuf, MD5), or ``[data]``."""
    if not data.startswith(KPL_MAGIC):
        return [data]
    body = data[len(KPL_MAGIC) : -16]
    records = []
    for number, value in _fields(body):
        if number == 3:
            assert isinstance(value, bytes)
            records += [v for n, v in _fields(value) if n == 3 and isinstance(v, bytes)]
    return records


def event_values(name: str) -> list[Any]:
    """Every stream record (Ion value) of a Lambda Kinesis event fixture."""
    event = json.loads(fixture(name).read_text())
    values = []
    for rec in event["Records"]:
        for user_record in kpl_split(base64.b64decode(rec["kinesis"]["data"], validate=True)):
            values.append(simpleion.loads(user_record))
    return values


def event_raw(name: str) -> list[bytes]:
    """The Ion binary user records of a Lambda Kinesis event fixture, as received."""
    event = json.loads(fixture(name).read_text())
    return [
        user
        for rec in event["Records"]
        for user in kpl_split(base64.b64decode(rec["kinesis"]["data"], validate=True))
    ]


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
    records = [record_from_ion(v) for v in event_values(name)]
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
