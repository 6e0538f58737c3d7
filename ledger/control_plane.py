"""The ``qldb`` control plane (REST JSON, botocore's ``qldb`` model) over the embedded ledgers:
QLDB's verification API and the ledger calls that make sense for local files.

- ``GetDigest`` (``POST /ledgers/N/digest``): ``Digest`` (base64) and ``DigestTipAddress``;
- ``GetBlock`` (``POST /ledgers/N/block``) and ``GetRevision`` (``POST /ledgers/N/revision``):
  the block or revision as ``IonText``, and, given a ``DigestTipAddress``, the ``Proof`` (an Ion
  list of hashes) that folds onto the block hash or revision hash to that digest
  (``ledger.proofs`` says how);
- ``DescribeLedger`` (``GET /ledgers/N``), ``ListLedgers`` (``GET /ledgers``), ``CreateLedger``
  (``POST /ledgers``), ``UpdateLedger`` (``PATCH /ledgers/N``: deletion protection) and
  ``DeleteLedger`` (``DELETE /ledgers/N``), over ``ledger.ledger_catalog``.

Errors are QLDB's: ``ResourceNotFoundException`` (404), ``ResourceAlreadyExistsException``
(409), ``ResourcePreconditionNotMetException`` (412), ``InvalidParameterException`` (400).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from ledger import proofs
from ledger.ledger_catalog import LedgerExists, LedgerInfo, LedgerRefused, UnknownLedger

_NAME = re.compile(r"(?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]{1,32}$")
_PATH = re.compile(r"^/ledgers(?:/([^/?]+))?(?:/(digest|block|revision))?/?$")


class ControlPlaneError(Exception):
    """An error answer: its code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        self.code, self.message, self.status = code, message, status
        super().__init__(f"{code}: {message}")

    def body(self) -> dict[str, str]:
        return {"__type": self.code, "Message": self.message, "message": self.message}


def _invalid(message: str) -> ControlPlaneError:
    return ControlPlaneError("InvalidParameterException", message, 400)


class QldbControlPlane:
    """Answers the control plane's requests; ``catalog`` is a ``SingleLedger`` or a
    ``LedgerDirectory``; ``region`` and ``account`` make the ARNs."""

    def __init__(self, catalog: Any, *, region: str = "us-east-1", account: str = "000000000000"):
        self.catalog = catalog
        self.region = region
        self.account = account

    @staticmethod
    def handles(path: str) -> bool:
        return _PATH.match(path.split("?", 1)[0]) is not None

    def handle(self, method: str, path: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Run one request; returns (HTTP status, JSON body); raises ``ControlPlaneError``."""
        m = _PATH.match(path.split("?", 1)[0])
        if m is None:
            raise ControlPlaneError("UnknownOperationException", f"no operation at {path}", 404)
        name, verb = m.group(1), m.group(2)
        try:
            if name is None:
                if method == "GET":
                    return 200, self._list()
                if method == "POST":
                    return 200, self._create(body)
            elif verb is None:
                if method == "GET":
                    return 200, self._describe(self.catalog.info(name))
                if method == "PATCH":
                    protection = body.get("DeletionProtection")
                    info = self.catalog.update(name, deletion_protection=protection)
                    return 200, self._describe(info)
                if method == "DELETE":
                    self.catalog.delete(name)
                    return 200, {}
            elif method == "POST":
                self.catalog.info(name)
                led = self.catalog(name)
                if verb == "digest":
                    return 200, _digest(led)
                if verb == "block":
                    return 200, _block(led, body)
                return 200, _revision(led, body)
        except UnknownLedger as exc:
            raise ControlPlaneError("ResourceNotFoundException", str(exc), 404) from None
        except LedgerExists as exc:
            raise ControlPlaneError("ResourceAlreadyExistsException", str(exc), 409) from None
        except LedgerRefused as exc:
            raise ControlPlaneError("ResourcePreconditionNotMetException", str(exc), 412) from None
        except proofs.ProofError as exc:
            raise _invalid(str(exc)) from None
        raise ControlPlaneError("UnknownOperationException", f"no {method} at {path}", 405)

    def _arn(self, name: str) -> str:
        return f"arn:aws:qldb:{self.region}:{self.account}:ledger/{name}"

    def _describe(self, info: LedgerInfo) -> dict[str, Any]:
        return {
            "Name": info.name,
            "Arn": self._arn(info.name),
            "State": "ACTIVE",
            "CreationDateTime": info.created.timestamp(),
            "PermissionsMode": info.permissions_mode,
            "DeletionProtection": info.deletion_protection,
        }

    def _list(self) -> dict[str, Any]:
        ledgers = []
        for name in self.catalog.names():
            info = self.catalog.info(name)
            ledgers.append(
                {"Name": name, "State": "ACTIVE", "CreationDateTime": info.created.timestamp()}
            )
        return {"Ledgers": ledgers}

    def _create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body.get("Name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _invalid(f"Name is not a valid ledger name: {name!r}")
        mode = body.get("PermissionsMode")
        if mode not in ("ALLOW_ALL", "STANDARD"):
            raise _invalid(f"PermissionsMode must be ALLOW_ALL or STANDARD, not {mode!r}")
        protection = body.get("DeletionProtection", True)
        info = self.catalog.create(
            name, deletion_protection=bool(protection), permissions_mode=mode
        )
        return self._describe(info)


def _ion_arg(body: Mapping[str, Any], field: str, *, required: bool = True) -> Any:
    holder = body.get(field)
    if holder is None and not required:
        return None
    if not isinstance(holder, Mapping) or not isinstance(holder.get("IonText"), str):
        raise _invalid(f"{field} must be a ValueHolder with IonText")
    from amazon.ion import simpleion

    try:
        return simpleion.loads(holder["IonText"])
    except Exception as exc:
        raise _invalid(f"{field}.IonText is not Ion: {exc}") from None


def _seq(led: Any, body: Mapping[str, Any], field: str, *, required: bool = True) -> int | None:
    value = _ion_arg(body, field, required=required)
    if value is None:
        return None
    if not isinstance(value, Mapping) or "sequenceNo" not in value or "strandId" not in value:
        raise _invalid(f"{field} must be {{strandId, sequenceNo}}")
    if str(value["strandId"]) != led.strand_id:
        raise _invalid(f"{field}: strand {value['strandId']} is not this ledger's")
    seq = value["sequenceNo"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise _invalid(f"{field}: sequenceNo must be an integer")
    return int(seq)


def _holder(value: Any) -> dict[str, str]:
    return {"IonText": proofs.ion_text(value)}


def _digest(led: Any) -> dict[str, Any]:
    digest, tip = proofs.digest(led)
    return {"Digest": base64.b64encode(digest).decode("ascii"), "DigestTipAddress": _holder(tip)}


def _block(led: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    seq = _seq(led, body, "BlockAddress")
    assert seq is not None
    tip = _seq(led, body, "DigestTipAddress", required=False)
    answer = {"Block": _holder(proofs.block_value(led, seq))}
    if tip is not None:
        answer["Proof"] = _holder(proofs.block_proof(led, seq, tip))
    return answer


def _revision(led: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    seq = _seq(led, body, "BlockAddress")
    assert seq is not None
    doc_id = body.get("DocumentId")
    if not isinstance(doc_id, str):
        raise _invalid("DocumentId is required")
    tip = _seq(led, body, "DigestTipAddress", required=False)
    answer = {"Revision": _holder(proofs.revision_value(led, seq, doc_id))}
    if tip is not None:
        answer["Proof"] = _holder(proofs.revision_proof(led, seq, doc_id, tip))
    return answer
