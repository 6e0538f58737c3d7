"""Ion hashes for the ledger's journal: revision hashes and statement digests.

With the ionhash package (the pinned set) ``ion_hash`` is the Ion Hash (SHA-256) QLDB uses, so
the ledger's journal verifies like QLDB's. When ionhash does not import (amazon.ion 0.11 and
later), the documented fallback is SHA-256 over a canonical encoding of the value
(``journal.canonical``-style: typed scalars, struct fields sorted): the journal still chains and
verifies against itself, but its hashes are not QLDB's, and ``IONHASH`` says so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull, IonPyText

from journal.hashes import dot
from ledger.ion_binary import decode, encode, ion_type_of

log = logging.getLogger(__name__)


def _load_ionhash() -> Callable[[Any], bytes] | None:
    try:
        from ionhash.fast_value_hasher import hash_value
        from ionhash.hasher import hashlib_hash_function_provider
    except Exception as exc:  # ImportError, or ionhash failing against a newer amazon.ion
        log.warning("ionhash unavailable; the ledger's hashes use the SHA-256 fallback: %s", exc)
        return None
    provider = hashlib_hash_function_provider("SHA256")

    def hasher(value: Any) -> bytes:
        return bytes(hash_value(value, provider))

    return hasher


_IONHASH = _load_ionhash()
IONHASH = _IONHASH is not None


def _is_ionpy(value: Any) -> bool:
    """True when ``value`` and everything inside carries simpleion's ``ion_type``."""
    if getattr(value, "ion_type", None) is None:
        return False
    if isinstance(value, Mapping):
        items = value.iteritems() if hasattr(value, "iteritems") else value.items()
        return all(_is_ionpy(v) for _, v in items)
    if isinstance(value, list):
        return all(_is_ionpy(v) for v in value)
    return True


def as_ion(value: Any) -> Any:
    """``value`` as simpleion values (a round trip through Ion binary when it holds plain ones)."""
    return value if _is_ionpy(value) else decode(encode(value))


def _fallback(value: Any) -> bytes:
    out: list[bytes] = []
    _canonical(value, out)
    return hashlib.sha256(b"".join(out)).digest()


def _canonical(value: Any, out: list[bytes]) -> None:
    t = ion_type_of(value)
    for a in getattr(value, "ion_annotations", ()) or ():
        out.append(b"@" + str(getattr(a, "text", a)).encode() + b";")
    if value is None or isinstance(value, IonPyNull):
        out.append(b"n" + t.name.encode() + b";")
    elif t is IonType.STRUCT:
        items = value.iteritems() if hasattr(value, "iteritems") else value.items()
        fields = []
        for k, v in items:
            sub: list[bytes] = []
            _canonical(v, sub)
            fields.append(str(k).encode() + b"=" + b"".join(sub))
        out.append(b"{" + b",".join(sorted(fields)) + b"}")
    elif t is IonType.LIST or t is IonType.SEXP:
        out.append(b"[" if t is IonType.LIST else b"(")
        for v in value:
            _canonical(v, out)
        out.append(b"]")
    else:
        # The Ion binary of a scalar is canonical enough for a fallback (it carries the type).
        out.append(encode(value) + b";")


def ion_hash(value: Any) -> bytes:
    """The SHA-256 Ion hash of ``value`` (see the module docstring for the fallback)."""
    if _IONHASH is None:
        return _fallback(value)
    return _IONHASH(as_ion(value))


@lru_cache(maxsize=8192)
def text_hash(text: str) -> bytes:
    """The Ion hash of a string (a statement's text)."""
    value = IonPyText(text)
    value.ion_type = IonType.STRING
    return ion_hash(value)


def statement_digest(text: str, params: Sequence[Any]) -> bytes:
    """QLDB's statement digest: the text's Ion hash dot-folded with each parameter's Ion hash."""
    digest = text_hash(text)
    for p in params:
        digest = dot(digest, ion_hash(p))
    return digest
