"""The ledger's Ion binary codec now lives in ``journal.ion_binary`` (the ingest path and the buffer
read Ion with it too); its public names are re-exported here for existing importers."""

from __future__ import annotations

from journal.ion_binary import (
    BVM,
    FAST_READER,
    IonCodecError,
    decode,
    decode_all,
    encode,
    ion_type_of,
    read_fast,
)

__all__ = [
    "BVM",
    "FAST_READER",
    "IonCodecError",
    "decode",
    "decode_all",
    "encode",
    "ion_type_of",
    "read_fast",
]
