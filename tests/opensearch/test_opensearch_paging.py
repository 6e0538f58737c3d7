"""More pending statements than one search can return (the 10,000-hit result window) and more
pending blocks than one page: the settler replays every block, in commit order."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
from opensearch_records import PAGING_STRAND, T0, paging_chain, quick_incoming
from opensearch_support import OpenBuffer

from destination.embedded import EmbeddedDestination
from settler.cycle import SettlePolicy, settle

BLOCKS, STATEMENTS = 402, 25  # 401 x 25 + 1 = 10,026 statements
LEDGER = "us-east-1:123456789012:paging"


def test_more_than_ten_thousand_pending_statements_replay_in_commit_order(
    open_buffer: OpenBuffer, tmp_path: Path
) -> None:
    items = [
        quick_incoming(value, origin=f"shard-{seq % 4}/{seq}/{k}")
        for seq, values in enumerate(paging_chain(BLOCKS, STATEMENTS), start=1)
        for k, value in enumerate(values)
    ]
    random.Random(11).shuffle(items)  # the stream's order, not the commit order
    # Every read pages (100 hits per search at most). Statement states are not mirrored here:
    # osmem-server refuses update_by_query scripts, so mirroring would cost 10,000 single updates
    # (~30 s) that this test is not about (the contract suite checks the mirrored states).
    buf = open_buffer(page_size=100, statement_states=False)
    for i in range(0, len(items), 250):
        buf.put(items[i : i + 250])
    stats = buf.stats(T0)
    assert stats.statements == (BLOCKS - 1) * STATEMENTS + 1 > 10_000
    assert stats.blocks["pending"] == BLOCKS

    # One search cannot list them: OpenSearch refuses to page past its result window.
    from opensearchpy.exceptions import RequestError

    with pytest.raises(RequestError, match="Result window is too large"):
        buf.client.raw.search(
            index=buf.indices.statements, body={"from": 10_000, "size": 100, "sort": ["index"]}
        )
    pending = buf.pending(LEDGER, PAGING_STRAND, 0, 1_000)
    assert [b.summary.address.sequence_no for b in pending] == list(range(1, BLOCKS + 1))

    destination = EmbeddedDestination(tmp_path / "replica.db")
    report = settle(
        buf, destination, now=T0 + timedelta(days=1), policy=SettlePolicy(window_seconds=120)
    )
    assert not report.halted and report.quarantined == 0
    assert report.blocks == BLOCKS
    checkpoint = destination.checkpoint(LEDGER, PAGING_STRAND)
    assert checkpoint is not None and checkpoint.sequence_no == BLOCKS
    # The replica's own journal holds the inserts in commit order, each once.
    inserted = [
        text
        for block in destination.ledger.blocks()
        for text in block.statements
        if text.startswith("INSERT")
    ]
    assert inserted == [f"INSERT INTO Item << {{'k': {seq}}} >>" for seq in range(2, BLOCKS + 1)]
    assert buf.pending(LEDGER, PAGING_STRAND, 0, 10) == []
    assert len(buf.blocks("replayed")) == BLOCKS
    destination.close()


def test_more_strands_than_one_request_lists_is_refused_not_cut_short(
    open_buffer: OpenBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``strands`` lists every strand in one ``_msearch`` of up to a page per aggregation: past
    that the list would be cut short without a word (a strand left out would be neither released
    nor held), so a full page is refused. The page is made 3 here to reach it with 3 strands."""
    import buffer.opensearch_figures as figures
    from buffer.opensearch_client import OpenSearchError
    from synth import Synth  # isort: skip

    buf = open_buffer()
    for strand in ("StrandA", "StrandB"):
        s = Synth(strand=strand)
        buf.put(s.incomings(s.chain(1)))
    monkeypatch.setattr(figures, "MAX_PAGE", 3)
    assert [strand for _, strand in buf.strands()] == ["StrandA", "StrandB"]
    s = Synth(strand="StrandC")
    buf.put(s.incomings(s.chain(1)))
    with pytest.raises(OpenSearchError, match="3 strands or more"):
        buf.strands()
