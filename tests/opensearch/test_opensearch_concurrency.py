"""Several ingest Lambdas writing the same records at once (Kinesis re-delivers batches, shards
carry copies): the conditional writes settle on the same state one writer would have reached."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

from opensearch_support import OpenBuffer

from buffer.opensearch import OpenSearchBuffer
from buffer.port import Incoming

from synth import SYNTH_ARN_OTHER_STREAM, SYNTH_T0, Synth, SynthDoc  # isort: skip


def _copies(synth: Synth) -> list[Incoming]:
    """Blocks with revisions delivered twice (two shards, other arrivals), a copy through another
    stream of the ledger, and conflicting copies that came first (arrival earlier) or last."""
    copies = []
    for n, block in enumerate(synth.chain(8)):
        for k, value in enumerate(block.values):
            arrived = SYNTH_T0 + timedelta(seconds=n, milliseconds=k)
            copies.append(synth.incoming(value, origin=f"shard-0/{n}/{k}", arrived_at=arrived))
            later = arrived + timedelta(seconds=30)
            copies.append(synth.incoming(value, origin=f"shard-1/{n}/{k}", arrived_at=later))
    copies.append(
        synth.incoming(Synth(arn=SYNTH_ARN_OTHER_STREAM).chain(8)[4].summary, origin="stream-b")
    )
    other = synth.block(3, statements=["INSERT INTO Person ?", "DELETE FROM Person WHERE x = 1"])
    copies.append(synth.incoming(other.summary, origin="shard-9/1", arrived_at=SYNTH_T0))
    copies.append(synth.incoming(other.summary, origin="shard-9/2"))
    other_rev = synth.block(6, docs=[SynthDoc(f"Doc{6:019d}", 0, {"other": True})]).revisions[0]
    copies.append(synth.incoming(other_rev, origin="shard-8/1", arrived_at=SYNTH_T0))
    copies.append(synth.incoming(synth.control(), origin="shard-0/c"))
    return copies


def _writer(buf: OpenSearchBuffer, items: list[Incoming], barrier: threading.Barrier) -> None:
    barrier.wait()
    for i in range(0, len(items), 7):
        buf.put(items[i : i + 7])


def test_concurrent_writers_of_the_same_records_reach_the_state_of_one(
    open_buffer: OpenBuffer, synth: Synth, prefix: str
) -> None:
    copies = _copies(synth)
    reference = open_buffer(index_prefix=f"{prefix}-ref")
    reference.put(copies)
    expected = reference.dump()
    assert expected["counts"]["conflicts"] == 2  # the stored copies are the earliest ones

    writers = [open_buffer() for _ in range(4)]  # four Lambdas on the same indices
    barrier = threading.Barrier(len(writers))
    threads = []
    for seed, buf in enumerate(writers):
        items = list(copies)
        random.Random(seed).shuffle(items)
        threads.append(threading.Thread(target=_writer, args=(buf, items, barrier)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writers[0].dump() == expected
