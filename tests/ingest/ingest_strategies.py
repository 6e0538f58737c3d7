"""Hypothesis strategies shared by the ingest tests: Ion values as amazon.ion writes them, and
mutations of a record's bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from amazon.ion.simple_types import IonPySymbol
from hypothesis import strategies as st

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["a", "sym", "$ion"]).map(lambda s: IonPySymbol(s, None, None)),
)
ion_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=20,
)


def mutate(data: bytes, draw: st.DataObject, *, keep: int = 0) -> bytes:
    """``data`` with one to three bits flipped, bytes replaced, cut or inserted; the first
    ``keep`` bytes stay (4 keeps the Ion version marker)."""
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(min_value=1, max_value=3))):
        op = draw.draw(st.sampled_from(["flip", "cut", "insert", "byte"]))
        pos = draw.draw(st.integers(min_value=keep, max_value=max(keep, len(out) - 1)))
        if op == "flip" and pos < len(out):
            out[pos] ^= 1 << draw.draw(st.integers(min_value=0, max_value=7))
        elif op == "byte" and pos < len(out):
            out[pos] = draw.draw(st.integers(min_value=0, max_value=255))
        elif op == "cut":
            del out[pos : pos + draw.draw(st.integers(min_value=1, max_value=8))]
        else:
            out[pos:pos] = draw.draw(st.binary(min_size=1, max_size=4))
    return bytes(out)
