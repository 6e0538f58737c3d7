"""A bounded fuzz of the whole pipeline (hypothesis): a real simulated stream is delivered intact,
plus one damaged copy of one of its Kinesis records (bits flipped, cut short, bytes spliced in or
overwritten, in an aggregate or a plain record). Whatever the damage:

- the decoder only ever yields records or rejections of a documented kind, with a reason;
- the buffer counts every item exactly once and keeps every record of the intact stream (stored,
  or as the conflicting copy of a damaged record that came first and took its id);
- when the damage got a changed record through the decoder (a plain record's bits flipped into
  other valid Ion), the settler never crashes, and either the replica equals the source ledger or
  the settler halted and says why: damage is never replayed silently.

tests/ingest fuzzes the decoder alone (random bytes, damaged real aggregates); this one follows the
damage through the buffer and the settler."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer.port import Incoming, Rejection
from ingest.decode import decode_event
from ingest.service import ingest_items
from journal.records import RevisionDetails

from .hostile import Pipeline, Stream, event, packed, simulated_stream

KINDS = {"base64", "aggregate", "gzip", "json", "ion", "record-type", "field", "oversized"}


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return simulated_stream(tmp_path_factory.mktemp("fuzz-sim") / "sim", transactions=14, seed=9)


def damage(data: bytes, how: str, rng: random.Random) -> bytes:
    b = bytearray(data)
    if how == "flip1":  # one bit: most likely to leave valid, altered Ion
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == "flip":
        for _ in range(rng.randint(2, 6)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif how == "cut":
        del b[rng.randrange(1, len(b)) :]
    elif how == "splice":
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.randbytes(rng.randint(1, 16))
    else:  # overwrite
        at = rng.randrange(len(b))
        n = rng.randint(1, 16)
        b[at : at + n] = rng.randbytes(n)
    return bytes(b)


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.integers(min_value=0, max_value=10**6),
    how=st.sampled_from(["flip1", "flip1", "flip", "cut", "splice", "overwrite"]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    size=st.sampled_from([1, 4]),
)
def test_damage_is_rejected_or_halts_the_settler_never_replayed_silently(
    stream: Stream, which: int, how: str, seed: int, size: int
) -> None:
    rng = random.Random(seed)
    good = packed(stream.raws, size)
    target = good[which % len(good)]
    damaged = damage(target, how, rng)
    datas = list(good)
    datas.insert(rng.randrange(len(datas) + 1), damaged)
    intact = set(stream.raws)
    altered = [
        i for i in decode_event(event([damaged])) if isinstance(i, Incoming) and i.raw not in intact
    ]

    items = decode_event(event(datas))
    for item in items:
        assert isinstance(item, Incoming | Rejection)
        if isinstance(item, Rejection):
            assert item.kind in KINDS and item.reason

    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        pipeline = Pipeline.open(Path(tmp))
        try:
            report = ingest_items(pipeline.buffer, items)
            put = report.put
            counted = put.stored["blocks"] + put.stored["revisions"] + put.stored["control"]
            counted += put.duplicates + put.conflicts + put.late + put.rejected
            assert counted == report.records == len(items)
            # Every record of the intact stream is kept: stored, or, when the damaged copy
            # came first in the stream and took its id, kept as that id's conflicting copy.
            conflicts = {r.record_id for r in pipeline.buffer.rejected() if r.kind == "conflict"}
            for record_id, item in stream.records.items():
                rec = item.record
                found = pipeline.buffer.get_block(getattr(rec, "block_id", ""))
                if isinstance(rec, RevisionDetails):
                    kept = found is not None and rec.document_id in found.revisions
                else:
                    kept = found is not None
                assert kept or record_id in conflicts, record_id

            if not altered:
                return  # the damage was rejected or left intact copies: nothing new to settle
            cycle = pipeline.settle()
            if not cycle.halted:
                assert pipeline.equals_source(stream.source), (how, "replayed silently wrong")
            else:
                assert cycle.halt_reason
        finally:
            pipeline.close()
