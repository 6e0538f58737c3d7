"""A PostgreSQL replica's history checked from PostgreSQL alone (``PostgresDestination.
verify_chain``, run by ``qldb-settle verify``): every block's hash from its entries hash and
predecessor hash, its entries hash as the Merkle root of its list, the link to the block before
it, and every stored revision's hash from its ``ion`` and ``metadata`` (Ion hash). It changes
when what is checked changes, not when how blocks are written does (``destination.postgres``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from journal.hashes import adjacent, block_hash, dot, merkle_root


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place where the replica's stored history does not verify."""

    where: str
    reason: str


@dataclass(slots=True)
class ChainReport:
    blocks: int = 0
    revisions: int = 0
    revisions_hashed: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify_chain(conn: Any, sql: Callable[[str], Any]) -> ChainReport:
    """Check the stored history and block chain from PostgreSQL alone (see the module doc) on
    ``conn``, ``sql`` turning a template naming ``{s}`` into the schema's query; the report lists
    the first break of each kind it meets."""
    from journal.ion_binary import decode
    from ledger.hashing import ion_hash

    report = ChainReport()
    lists: dict[tuple[str, str, int], set[bytes]] = {}
    with conn.transaction():
        blocks = conn.execute(
            sql(
                "SELECT ledger, strand_id, sequence_no, block_hash, previous_block_hash, "
                "entries_hash, entries_hash_list FROM {s}.qldb_blocks "
                "ORDER BY ledger, strand_id, sequence_no"
            )
        ).fetchall()
    before: tuple[str, str, int, bytes] | None = None
    for ledger, strand, seq, stored_hash, prev, eh, entries in blocks:
        report.blocks += 1
        where = f"block {ledger}/{strand}/{seq}"
        bh = bytes(stored_hash)
        hashes = [bytes(e) for e in (entries or [])]
        lists[(ledger, strand, int(seq))] = set(hashes)
        if prev is None or eh is None:
            report.breaks.append(ChainBreak(where, "stored without its chain hashes"))
        else:
            if block_hash(bytes(eh), bytes(prev)) != bh:
                report.breaks.append(
                    ChainBreak(where, "blockHash is not dot(entriesHash, previousBlockHash)")
                )
            if hashes and merkle_root(hashes) != bytes(eh):
                report.breaks.append(
                    ChainBreak(where, "entriesHash is not the Merkle root of entriesHashList")
                )
            if (
                before is not None
                and before[:2] == (ledger, strand)
                and before[2] + 1 == seq
                and not adjacent(bytes(prev), before[3])
            ):
                report.breaks.append(
                    ChainBreak(where, f"previousBlockHash does not link to block {seq - 1}")
                )
        before = (ledger, strand, int(seq), bh)
    with conn.cursor(name="qldb_settle_history") as cur:
        cur.itersize = 2000
        cur.execute(
            sql(
                "SELECT table_name, document_id, version, ion, metadata, revision_hash, "
                "ledger, strand_id, block_sequence FROM {s}.qldb_history "
                "ORDER BY strand_id, block_sequence, document_id"
            )
        )
        for table, doc_id, version, ion, meta, rh, ledger, strand, seq in cur:
            report.revisions += 1
            where = f"revision {table}/{doc_id} version {version} (block {strand}/{seq})"
            if rh is None:
                report.breaks.append(ChainBreak(where, "stored without its hash"))
                continue
            listed = lists.get((ledger, strand, int(seq)))
            if listed is None:
                report.breaks.append(ChainBreak(where, "its block is not in qldb_blocks"))
            elif listed and bytes(rh) not in listed:
                report.breaks.append(ChainBreak(where, "hash not in its block's entries"))
            if ion is not None and meta is not None:
                content = dot(ion_hash(decode(bytes(ion))), ion_hash(decode(bytes(meta))))
                report.revisions_hashed += 1
                if content != bytes(rh):
                    report.breaks.append(
                        ChainBreak(where, "its ion and metadata do not hash to its hash")
                    )
    conn.commit()
    return report
