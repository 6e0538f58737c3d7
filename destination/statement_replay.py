"""Replaying a block by its statements (DESIGN.md rule 7): what a destination that runs a block's
PartiQL (the embedded ledger, QLDB) does around the statements, written once. Each adapter supplies
only where its facts are stored. The PostgreSQL destination, which replays revisions and runs no
PartiQL, uses ``learn_table_ids`` and ``index_named`` too (its UNDROP reads back the names it
recorded: its tables have names, no ids, so ``undrop_target``'s same-id rule has nothing to ask).

- ``learn_table_ids``: which replica table each source table id of a block is, recorded while the
  table is active, so that a later ``UNDROP TABLE "id"`` (which names a source id) can be
  translated (``undrop_target``).
- ``index_named``: the replica index a ``DROP INDEX "id" ON T`` names (QLDB never streams index
  ids: the table's only index).
- ``map_statement_writes``: which document the block's statements wrote is the copy of which source
  document. Each of the block's revisions (``BlockReplay.revisions``) is matched to a document its
  statements wrote in the revision's table whose content equals the revision's data, no document
  twice; a revision whose source document already has a copy must find that copy holding its data
  (or, for a deletion, gone). A revision the statements did not reproduce is an error: the replica
  would diverge from the source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Protocol

from destination.port import BlockReplay, RevisionOp
from journal.errors import DownConvertedCopy


def learn_table_ids(
    table_names: Iterable[tuple[str, str]],
    *,
    known: Callable[[str], bool],
    active_id: Callable[[str], str | None],
    record: Callable[[str, str], None],
) -> None:
    """For each ``(source table id, name)`` not ``known`` yet whose table is active in the replica
    (``active_id``: the replica's id of the active table of that name, None when there is none),
    ``record`` the source id with the replica's. ``active_id`` is only asked for unknown ids."""
    for source_id, name in table_names:
        if known(source_id):
            continue
        dest = active_id(name)
        if dest is not None:
            record(source_id, dest)


def undrop_target(
    source_id: str,
    *,
    learnt: str | None,
    replica_has: Callable[[str], bool],
    unknown: Callable[[], Exception],
) -> str:
    """The replica table an ``UNDROP TABLE "source_id"`` names: the one ``learnt`` for the source
    id, else the same id when the replica has a table of that id (it shares the source's ids, a
    copy of the same ledger); else ``unknown()`` is raised."""
    if learnt is not None:
        return learnt
    if replica_has(source_id):
        return source_id
    raise unknown()


def index_named(
    table: str,
    source_id: str,
    indexes: Sequence[tuple[str, str]],
    *,
    log: logging.Logger,
    unknown: Callable[[int], Exception],
) -> str:
    """The replica index a ``DROP INDEX "source_id" ON table`` names, of the table's ``indexes``
    (``(index id, expression)``): the index of that id, else the table's only index (QLDB never
    streams index ids, so nothing better is known; a warning on ``log`` says so); else
    ``unknown(number of indexes)`` is raised."""
    if source_id in [i for i, _ in indexes]:
        return source_id
    if len(indexes) == 1:
        log.warning(
            "DROP INDEX %s ON %s: QLDB never streams index ids; dropping the table's only "
            "index %s (on %s)", source_id, table, indexes[0][0], indexes[0][1],
        )  # fmt: skip
        return indexes[0][0]
    raise unknown(len(indexes))


class StatementWrites(Protocol):
    """What one adapter knows about the documents a block's statements wrote, for
    ``map_statement_writes``. A fingerprint is any value that is equal for equal Ion content."""

    def copy_of(self, rev: RevisionOp) -> str | None:
        """The replica document recorded as the copy of the revision's source document, or None."""
        ...

    def content(self, dest: str) -> Hashable | None:
        """The fingerprint of the content the block's statements left in document ``dest``;
        None when it has none (deleted, or not written where the adapter can only tell what the
        statements wrote)."""
        ...

    def written(self, table: str) -> Iterable[str]:
        """The documents the block's statements wrote in ``table``, in the order written."""
        ...

    def fingerprint(self, rev: RevisionOp) -> Hashable:
        """The fingerprint of the revision's data (not None)."""
        ...

    def down_converted(self, dest: str) -> bool:
        """Whether the copy ``dest`` holds a revision a JSON Lines export down-converted (an
        adapter that keeps no such mark says False)."""
        ...

    def record(self, rev: RevisionOp, dest: str) -> None:
        """Record ``dest`` as the copy of the revision's source document."""
        ...

    def forget(self, rev: RevisionOp) -> None:
        """The revision deleted its source document: drop what records its copy, if kept apart."""
        ...

    def diverged(self, rev: RevisionOp, why: str) -> Exception:
        """The error saying the statements did not reproduce the revision."""
        ...


def map_statement_writes(block: BlockReplay, writes: StatementWrites) -> None:
    """Match the block's revisions to the documents its statements wrote and record each match
    (see the module docstring); raise ``writes.diverged(...)``, or ``DownConvertedCopy`` for a
    copy a JSON Lines export down-converted, when the statements did not reproduce a revision."""
    claimed: set[str] = set()
    for rev in block.revisions:
        want = None if rev.data is None else writes.fingerprint(rev)
        dest = writes.copy_of(rev)
        if dest is not None:
            claimed.add(dest)
            got = writes.content(dest)
            if want is None:
                if got is not None:
                    raise writes.diverged(
                        rev, "the source deleted the document, the replayed statements did not"
                    )
                writes.forget(rev)
            elif got != want and writes.down_converted(dest):
                raise DownConvertedCopy(
                    block.block_id,
                    f"revision {rev.document_id} v{rev.version}: the replica's copy {dest} holds a "
                    "revision down-converted by a JSON Lines export, so the block's statements "
                    "cannot reproduce it",
                )
            elif got != want:
                raise writes.diverged(
                    rev,
                    f"the replayed statements did not reproduce it in the replica's copy {dest} "
                    "(the replica would diverge)",
                )
            continue
        if want is None:
            continue  # deleted in the source, never copied here
        match = next(
            (
                d
                for d in writes.written(rev.table_name)
                if d not in claimed and writes.content(d) == want
            ),
            None,
        )
        if match is None:
            raise writes.diverged(
                rev,
                f"no document written by the replayed statements in {rev.table_name} equals it "
                "(the replica would diverge)",
            )
        claimed.add(match)
        writes.record(rev, match)
