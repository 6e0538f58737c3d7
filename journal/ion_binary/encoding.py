"""What the writer, the fast reader and the structure check all read Ion 1.0 binary by: the
version marker, the size of the system symbol table, VarUInt fields, and the two errors."""

from __future__ import annotations

BVM = b"\xe0\x01\x00\xea"
"""The binary version marker that starts every Ion 1.0 binary stream."""

SYSTEM_SYMBOLS = (
    "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version", "imports", "symbols", "max_id",
    "$ion_shared_symbol_table",
)  # fmt: skip
FIRST_LOCAL_SID = len(SYSTEM_SYMBOLS) + 1
"""The symbol id of a local symbol table's first symbol."""


class IonCodecError(ValueError):
    """Bytes that are not the Ion this codec reads, or a value it cannot write."""


class IonBinaryError(ValueError):
    """The top level of an Ion binary stream is malformed at ``offset``."""

    def __init__(self, offset: int, reason: str) -> None:
        self.offset = offset
        self.reason = reason
        super().__init__(f"offset {offset}: {reason}")


def read_varuint(data: bytes, pos: int, end: int, what: str = "VarUInt") -> tuple[int, int]:
    """The VarUInt at ``pos`` and the position after it; ``IonBinaryError`` at ``pos`` naming
    ``what`` if it runs past ``end`` (the end of its container)."""
    n = 0
    p = pos
    while p < end:
        b = data[p]
        p += 1
        n = (n << 7) | (b & 0x7F)
        if b & 0x80:
            return n, p
    raise IonBinaryError(pos, f"{what} runs past the end of its container")
