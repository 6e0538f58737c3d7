"""The composition root: turn settings (URLs) into adapters of the two ports.

Adapters are imported only when chosen, so the ingest Lambda never imports pyqldb or ionhash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compose.settings import Settings
from runtime.errors import ConfigError

if TYPE_CHECKING:
    from buffer.port import SettlingBuffer
    from destination.port import Destination


def open_buffer(settings: Settings, *, opensearch_auth: str = "auto") -> SettlingBuffer:
    url = settings.buffer
    scheme, _, rest = url.partition(":")
    if scheme == "sqlite" and rest:
        from buffer.sqlite import SqliteBuffer

        return SqliteBuffer(rest)
    if scheme == "opensearch" and rest.startswith(("http://", "https://")):
        from buffer.opensearch import OpenSearchBuffer

        return OpenSearchBuffer.from_url(
            rest, index_prefix=settings.index_prefix, auth=opensearch_auth
        )
    raise ConfigError(f"buffer URL {url!r} is not sqlite:PATH or opensearch:http(s)://HOST[:PORT]")


def open_destination(settings: Settings) -> Destination:
    url = settings.destination
    scheme, _, rest = url.partition(":")
    if scheme == "embedded" and rest:
        from destination.embedded import EmbeddedDestination

        return EmbeddedDestination(rest)
    if scheme == "qldb" and rest:
        from destination.qldb import QldbDestination

        return QldbDestination(ledger_name=rest, endpoint=settings.qldb_endpoint)
    if scheme in ("postgresql", "postgres") and rest.startswith("//"):
        from destination.postgres import PostgresDestination

        password = None if settings.pg_secret_arn is None else _secret_password(settings)
        return PostgresDestination(url, schema=settings.pg_schema, password=password)
    raise ConfigError(
        f"destination URL {url!r} is not embedded:PATH, qldb:LEDGER_NAME or "
        "postgresql://USER@HOST[:PORT]/DBNAME"
    )


def _secret_password(settings: Settings) -> str:
    """The ``password`` of the Secrets Manager secret ``pg_secret_arn`` (RDS's secret JSON)."""
    import json

    import boto3

    arn = settings.pg_secret_arn
    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
        return str(json.loads(value)["password"])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"secret {arn}: no password in its JSON ({exc})") from exc
