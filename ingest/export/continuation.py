"""Where an export ends and a stream begins, read back from the buffer (``qldb-settle status``).

The records of an export carry ``export`` + the export id (``ingest.export.origin``) where a
stream record carries its QLDB stream id (``LedgerRef.stream_arn``), and the buffer keeps the
first copy of each block, so the
block summary it holds says which source delivered the block. Per strand, the last block held
from an export and the first held from a stream after it are found by bisection over the
buffered sequence numbers (a few ``get_block`` calls, not one per block), assuming, as a
continuation is, that the export's blocks precede the stream's.
"""

from __future__ import annotations

from typing import Any

from buffer.port import SettlingBuffer
from ingest.export.origin import from_export
from journal.records import BlockAddress, block_id


def _from_export(buffer: SettlingBuffer, ledger: str, strand: str, seq: int) -> bool:
    found = buffer.get_block(block_id(ledger, BlockAddress(strand, seq)))
    return found is not None and from_export(found.summary.stream)


def continuations(buffer: SettlingBuffer) -> list[dict[str, Any]]:
    """Per (ledger, strand) whose first buffered block came from an export: the export's last
    block address and the stream's first (None when no stream block follows)."""
    by_strand: dict[tuple[str, str], list[int]] = {}
    for row in buffer.blocks():
        by_strand.setdefault((row.ledger, row.strand_id), []).append(row.sequence_no)
    out = []
    for (ledger, strand), seqs in sorted(by_strand.items()):
        seqs.sort()
        if not _from_export(buffer, ledger, strand, seqs[0]):
            continue
        lo, hi = 0, len(seqs) - 1  # seqs[lo] is from an export; find the last such
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _from_export(buffer, ledger, strand, seqs[mid]):
                lo = mid
            else:
                hi = mid - 1
        nxt = seqs[lo + 1] if lo + 1 < len(seqs) else None
        out.append(
            {
                "ledger": ledger,
                "strand": strand,
                "export_last_block": f"{strand}/{seqs[lo]}",
                "stream_first_block": None if nxt is None else f"{strand}/{nxt}",
                "export_blocks": lo + 1,
                "stream_blocks": len(seqs) - lo - 1,
            }
        )
    return out
