"""Where an export's objects are: a small port and its two adapters.

Keys are relative to the export's prefix (the folder that holds the manifests): the completed
manifest names each data object by its full bucket key (``journalExport/2019/04/15/22/...``), and
``ingest.export.manifest`` strips the started manifest's prefix from it before asking the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from journal.errors import InputError
from runtime.errors import TransientError


class MissingObject(Exception):
    """The store holds no object under that key."""


class ExportStore(Protocol):
    """Read-only access to one export prefix."""

    @property
    def location(self) -> str:
        """Where the prefix is, for messages (``/data/journalExport``, ``s3://b/journalExport``)."""
        ...

    def list_keys(self) -> Iterator[str]:
        """Every object key under the prefix (relative, ``/``-separated), sorted."""
        ...

    def read(self, key: str) -> bytes:
        """The object's bytes; ``MissingObject`` when there is none."""
        ...


class FolderStore:
    """A local folder laid out like the bucket prefix (hidden files and folders left out)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{root}: not a folder")

    @property
    def location(self) -> str:
        return str(self.root)

    def list_keys(self) -> Iterator[str]:
        for p in sorted(self.root.rglob("*")):
            rel = p.relative_to(self.root)
            if p.is_file() and not any(part.startswith(".") for part in rel.parts):
                yield rel.as_posix()

    def read(self, key: str) -> bytes:
        path = self.root / key
        if ".." in Path(key).parts or not path.is_file():
            raise MissingObject(key)
        return path.read_bytes()


class S3Store:
    """``s3://BUCKET/PREFIX`` through boto3 (``client`` injected; one is made when omitted).

    Needs ``s3:ListBucket`` on the prefix and ``s3:GetObject`` on its objects, nothing else."""

    def __init__(self, bucket: str, prefix: str, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client

    @classmethod
    def from_url(cls, url: str, client: Any = None) -> S3Store:
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not url.startswith("s3://") or not bucket:
            raise InputError(f"{url}: not an s3://BUCKET/PREFIX URL")
        return cls(bucket, prefix, client)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def list_keys(self) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            found = [o["Key"][len(start) :] for page in pages for o in page.get("Contents", [])]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "AccessDenied", "403"):
                raise InputError(f"{self.location}: cannot list: {code}") from None
            raise TransientError(f"{self.location}: cannot list: {exc}") from None
        except BotoCoreError as exc:
            raise TransientError(f"{self.location}: cannot list: {exc}") from None
        yield from sorted(k for k in found if k and not k.endswith("/"))

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            body: bytes = response["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise MissingObject(key) from None
            raise TransientError(f"{self.location}/{key}: cannot read: {exc}") from None
        except BotoCoreError as exc:
            raise TransientError(f"{self.location}/{key}: cannot read: {exc}") from None
        return body


def open_store(location: str, client: Any = None) -> ExportStore:
    """``s3://BUCKET/PREFIX`` or a local folder."""
    if location.startswith("s3://"):
        return S3Store.from_url(location, client)
    return FolderStore(location)


def is_export(location: str) -> bool:
    """An ``s3://`` URL, or a folder holding an ``EXPORTID.started.manifest`` at its top."""
    if location.startswith("s3://"):
        return True
    p = Path(location)
    return p.is_dir() and any(p.glob("*.started.manifest"))
