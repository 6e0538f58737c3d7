"""The ``qldb`` control plane of ``serve-qldb`` through boto3's own ``qldb`` client, only its
endpoint changed (``AWS_ENDPOINT_URL_QLDB``): GetDigest, GetBlock and GetRevision with proofs
that verify by the tutorial's algorithm (``verifier``), and the ledger calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, Served, make_driver
from .verifier import verify


def _qldb(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_QLDB", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return boto3.client("qldb", region_name=REGION)


def _ion(holder: dict[str, str]) -> Any:
    return simpleion.loads(holder["IonText"])


def test_digest_block_and_revision_proofs_verify(
    served: Served, ledger_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    qldb = _qldb(served.url, monkeypatch)
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    with make_driver(served.url, ledger_name) as driver:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE Car"))
        ids = driver.execute_lambda(
            lambda tx: [
                r["documentId"]
                for r in tx.execute_statement(
                    "INSERT INTO Car ?", [{"VIN": f"V{i}", "n": i} for i in range(5)]
                )
            ]
        )
        driver.execute_lambda(
            lambda tx: tx.execute_statement("UPDATE Car SET n = 9 WHERE VIN = 'V0'")
        )
        meta = driver.execute_lambda(
            lambda tx: list(
                tx.execute_statement(
                    "SELECT blockAddress, metadata.id AS id FROM _ql_committed_Car"
                )
            )
        )
    got = qldb.get_digest(Name=ledger_name)
    digest = got["Digest"]
    tip = got["DigestTipAddress"]
    assert len(digest) == 32 and _ion(tip)["sequenceNo"] >= 3
    assert {str(m["id"]) for m in meta} == {str(i) for i in ids}
    for m in meta:
        address = {"IonText": simpleion.dumps(m["blockAddress"], binary=False)}
        rev = qldb.get_revision(
            Name=ledger_name, BlockAddress=address, DocumentId=str(m["id"]), DigestTipAddress=tip
        )
        revision = _ion(rev["Revision"])
        proof = [bytes(h) for h in _ion(rev["Proof"])]
        assert str(revision["metadata"]["id"]) == str(m["id"])
        assert verify(bytes(revision["hash"]), digest, proof)
        assert not verify(bytes(revision["hash"]), digest, proof[:-1])
        block = qldb.get_block(Name=ledger_name, BlockAddress=address, DigestTipAddress=tip)
        value = _ion(block["Block"])
        assert verify(bytes(value["blockHash"]), digest, [bytes(h) for h in _ion(block["Proof"])])
        assert bytes(revision["hash"]) in [bytes(h) for h in value["entriesHashList"]]
    # A wrong digest does not verify; a block past the digest's tip is refused.
    assert not verify(bytes(revision["hash"]), b"\0" * 32, proof)
    tip_value = _ion(tip)
    past_value = {"strandId": tip_value["strandId"], "sequenceNo": tip_value["sequenceNo"] + 5}
    past = {"IonText": simpleion.dumps(past_value, binary=False)}
    with pytest.raises(qldb.exceptions.InvalidParameterException):
        qldb.get_block(Name=ledger_name, BlockAddress=past, DigestTipAddress=tip)


def test_ledger_calls(served: Served, ledger_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    qldb = _qldb(served.url, monkeypatch)
    created = qldb.create_ledger(Name=ledger_name, PermissionsMode="STANDARD")
    assert created["State"] == "ACTIVE" and created["DeletionProtection"] is True
    assert created["Arn"].endswith(f":ledger/{ledger_name}")
    with pytest.raises(qldb.exceptions.ResourceAlreadyExistsException):
        qldb.create_ledger(Name=ledger_name, PermissionsMode="STANDARD")
    described = qldb.describe_ledger(Name=ledger_name)
    assert described["PermissionsMode"] == "STANDARD"
    assert ledger_name in [x["Name"] for x in qldb.list_ledgers()["Ledgers"]]
    with pytest.raises(qldb.exceptions.ResourcePreconditionNotMetException):
        qldb.delete_ledger(Name=ledger_name)
    qldb.update_ledger(Name=ledger_name, DeletionProtection=False)
    qldb.delete_ledger(Name=ledger_name)
    assert not served.ledger_file(ledger_name).exists()
    with pytest.raises(qldb.exceptions.ResourceNotFoundException):
        qldb.describe_ledger(Name=ledger_name)
    with pytest.raises(qldb.exceptions.ResourceNotFoundException):
        qldb.get_digest(Name=ledger_name)


def test_a_single_ledger_file_is_described_but_not_created_or_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import start_serve_qldb, stop

    proc, url = start_serve_qldb(f"embedded:{tmp_path / 'one.db'}", "--ledger-name", "one")
    try:
        qldb = _qldb(url, monkeypatch)
        assert [x["Name"] for x in qldb.list_ledgers()["Ledgers"]] == ["one"]
        assert qldb.describe_ledger(Name="one")["Arn"].endswith(":ledger/one")
        with pytest.raises(qldb.exceptions.ResourceNotFoundException):
            qldb.describe_ledger(Name="two")
        with pytest.raises(qldb.exceptions.ResourceAlreadyExistsException):
            qldb.create_ledger(Name="one", PermissionsMode="ALLOW_ALL")
        with pytest.raises(qldb.exceptions.ResourcePreconditionNotMetException):
            qldb.create_ledger(Name="two", PermissionsMode="ALLOW_ALL")
        with pytest.raises(qldb.exceptions.ResourcePreconditionNotMetException):
            qldb.delete_ledger(Name="one")
        with pytest.raises(qldb.exceptions.InvalidParameterException):
            qldb.get_digest(Name="one")  # an empty journal has no digest yet
        with make_driver(url, "one") as driver:
            driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE T"))
        digest = qldb.get_digest(Name="one")
        assert _ion(digest["DigestTipAddress"])["sequenceNo"] == 0
    finally:
        stop(proc)
    assert (tmp_path / "one.db").exists()
