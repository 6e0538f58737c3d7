"""The opensearch-py boundary of ``OpenSearchBuffer``: connection, authentication, retries, bulk
chunking, and the mapping of opensearch-py exceptions into ``journal.errors``.

Nothing outside this module sees an opensearch-py exception:

- a connection error, a timeout, or an answer 429/500/502/503/504 is retried with exponential
  backoff and jitter; once the attempts run out it becomes ``TransientError`` (exit 3: nothing was
  lost, run it again), naming the operation, the host and the last error;
- 401/403 become ``ConfigError`` (the credentials or the domain's access policy are wrong, and
  retrying cannot fix that);
- anything else (a mapping or query the server refuses) becomes ``OpenSearchError``.

Inside an invocation's deadline (``runtime.deadline``) each request's timeout is at most what is
left of it, and no attempt is started, nor a backoff slept, past it (``DeadlineReached``).

Every write the buffer sends is safe to repeat: creates are create-if-absent by deterministic id,
conditional writes carry ``if_seq_no``/``if_primary_term`` and their callers re-read on a conflict,
and deletes are by id or by query. So a request whose answer was lost can be sent again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from journal.errors import SettleError
from runtime import deadline
from runtime.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")
Auth = Literal["auto", "sigv4", "none"]
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class OpenSearchError(SettleError):
    """OpenSearch refused a request for a reason retrying cannot fix (a mapping, a query, a
    missing index); carries the operation, the HTTP status and the server's reason."""

    def __init__(self, operation: str, status: int | str, reason: str) -> None:
        self.operation = operation
        self.status = status
        self.reason = reason
        super().__init__(f"OpenSearch refused {operation} (HTTP {status}): {reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` (from 0) sleeps a random time up to
    ``min(max_delay, base_delay * 2**n)``; at most ``attempts`` tries of one request."""

    attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where the buffer lives and how requests are signed."""

    url: str
    host: str
    sigv4: bool
    region: str | None
    service: str

    @classmethod
    def parse(cls, url: str, auth: str = "auto", region: str | None = None) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"OpenSearch URL {url!r} is not http(s)://HOST[:PORT]")
        if auth not in ("auto", "sigv4", "none"):
            raise ConfigError(f"OpenSearch auth must be auto, sigv4 or none, not {auth!r}")
        host = parts.hostname
        aws = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
        sigv4 = auth == "sigv4" or (auth == "auto" and aws)
        # search-NAME-ID.REGION.es.amazonaws.com, vpc-NAME-ID.REGION.es.amazonaws.com
        m = re.search(r"\.([a-z]{2}(?:-[a-z]+)+-\d)\.(es|aoss)\.amazonaws\.com", host)
        found = m.group(1) if m else None
        service = m.group(2) if m else "es"
        region = (
            region or found or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        )
        if sigv4 and not region:
            raise ConfigError(
                f"SigV4 signing for {host} needs a region: none in the host name, and neither "
                "AWS_REGION nor AWS_DEFAULT_REGION is set"
            )
        return cls(url=url.rstrip("/"), host=host, sigv4=sigv4, region=region, service=service)


def connect(endpoint: Endpoint, *, timeout: float = 30.0) -> Any:
    """An ``opensearchpy.OpenSearch`` client with its own retries off (``Client`` retries)."""
    from opensearchpy import OpenSearch

    options: dict[str, Any] = {
        "hosts": [endpoint.url],
        "timeout": timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "http_compress": False,
    }
    if endpoint.sigv4:
        import boto3
        from opensearchpy import AWSV4SignerAuth, RequestsHttpConnection

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigError(
                f"SigV4 signing for {endpoint.host} needs AWS credentials and boto3 found none "
                "(environment, profile, or the Lambda's role)"
            )
        options["http_auth"] = AWSV4SignerAuth(credentials, endpoint.region, endpoint.service)
        options["connection_class"] = RequestsHttpConnection
        options["pool_maxsize"] = 4
    return OpenSearch(**options)


class Client:
    """Every request of the buffer goes through ``call`` (one request, retried) or ``bulk``."""

    def __init__(
        self,
        raw: Any,
        endpoint: Endpoint,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_bulk_actions: int = 500,
        max_bulk_bytes: int = 5_000_000,
        timeout: float = 30.0,
    ) -> None:
        self.raw = raw
        self.timeout = timeout
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random()
        self.max_bulk_actions = max_bulk_actions
        self.max_bulk_bytes = max_bulk_bytes

    def close(self) -> None:
        self.raw.close()

    def call(self, what: str, fn: Callable[[Any], T], *, allow: Sequence[int] = ()) -> T | None:
        """Run ``fn(client)`` with retries; an HTTP status in ``allow`` returns None instead of
        raising (for example 404 on a get, 409 on a conditional write)."""
        from opensearchpy.exceptions import ConnectionError as OsConnectionError
        from opensearchpy.exceptions import (
            ImproperlyConfigured,
            OpenSearchException,
            TransportError,
        )

        started = time.monotonic()
        last = ""
        for attempt in range(self.retry.attempts):
            deadline.check(f"OpenSearch {what} at {self.endpoint.host}")
            try:
                return fn(self.raw)
            except OsConnectionError as exc:
                last = f"{type(exc).__name__}: {exc.info!r}"[:300]
            except TransportError as exc:
                status = exc.status_code
                if isinstance(status, int) and status in allow:
                    return None
                if status in (401, 403):
                    raise ConfigError(
                        f"OpenSearch at {self.endpoint.host} refused {what} (HTTP {status}): "
                        "check the credentials, --opensearch-auth and the domain's access policy"
                    ) from None
                if not (isinstance(status, int) and status in RETRY_STATUSES):
                    raise OpenSearchError(what, status, _reason(exc)) from None
                last = f"HTTP {status}: {_reason(exc)}"[:300]
            except ImproperlyConfigured as exc:
                raise ConfigError(f"OpenSearch client for {self.endpoint.host}: {exc}") from None
            except OpenSearchException as exc:  # an answer that is not JSON, and the like
                raise OpenSearchError(what, "N/A", f"{type(exc).__name__}: {exc}") from None
            if attempt + 1 < self.retry.attempts:
                delay = self.retry.delay(attempt, self._rng)
                if not deadline.sleep_allowed(delay):
                    raise deadline.DeadlineReached(
                        f"OpenSearch at {self.endpoint.host}: {what} failed ({last}) and the "
                        "invocation's deadline leaves no time to retry it"
                    )
                log.warning(
                    "OpenSearch %s failed (%s); retry %d in %.2fs", what, last, attempt + 1, delay
                )
                self._sleep(delay)
        raise TransientError(
            f"OpenSearch at {self.endpoint.host} did not complete {what} after "
            f"{self.retry.attempts} attempts in {time.monotonic() - started:.1f} s "
            f"(last: {last})"
        )

    def request(
        self, what: str, method: str, /, *, allow: Sequence[int] = (), **kwargs: Any
    ) -> Any:
        """``call`` of one opensearch-py method by its dotted name (``"indices.refresh"``) with
        keyword arguments; returns the decoded answer, or None for an allowed status."""

        def invoke(raw: Any) -> Any:
            target = raw
            for part in method.split("."):
                target = getattr(target, part)
            if deadline.remaining() is not None:  # the request ends by the deadline
                return target(**kwargs, request_timeout=deadline.timeout(self.timeout))
            return target(**kwargs)

        return self.call(what, invoke, allow=allow)

    def bulk(
        self, actions: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]], what: str
    ) -> list[dict[str, Any]]:
        """Send ``(action, source)`` pairs through the bulk API in chunks bounded by count and
        bytes; return one item result per action, in order (``{"status": 201, ...}``).

        Items answered 429 or 5xx (a full write queue) are sent again with backoff; a whole
        request that fails is retried by ``call``. Every other item status is returned.
        """
        lines = [_ndjson(a, s) for a, s in actions]
        results: list[dict[str, Any] | None] = [None] * len(actions)
        for chunk in self._chunks(lines):
            todo = chunk
            for attempt in range(self.retry.attempts):
                body = "".join(lines[i] for i in todo)
                answer = self.request(what, "bulk", body=body)
                items = answer["items"]
                if len(items) != len(todo):
                    raise OpenSearchError(
                        what, "200", f"bulk answered {len(items)} items for {len(todo)} actions"
                    )
                again = []
                for i, item in zip(todo, items, strict=True):
                    result = next(iter(item.values()))
                    if int(result.get("status", 0)) in RETRY_STATUSES:
                        again.append(i)
                    else:
                        results[i] = result
                if not again:
                    break
                todo = again
                if attempt + 1 < self.retry.attempts:
                    delay = self.retry.delay(attempt, self._rng)
                    if not deadline.sleep_allowed(delay):
                        raise deadline.DeadlineReached(
                            f"OpenSearch at {self.endpoint.host}: {len(todo)} items of {what} "
                            "refused and the invocation's deadline leaves no time to retry them"
                        )
                    log.warning(
                        "OpenSearch %s: %d items refused, retry in %.2fs", what, len(again), delay
                    )
                    self._sleep(delay)
            else:
                raise TransientError(
                    f"OpenSearch at {self.endpoint.host} kept refusing {len(todo)} items of "
                    f"{what} after {self.retry.attempts} attempts"
                )
        return [r for r in results if r is not None]

    def _chunks(self, lines: Sequence[str]) -> Iterator[list[int]]:
        chunk: list[int] = []
        size = 0
        for i, line in enumerate(lines):
            n = len(line.encode("utf-8"))
            if chunk and (len(chunk) >= self.max_bulk_actions or size + n > self.max_bulk_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(i)
            size += n
        if chunk:
            yield chunk


def _ndjson(action: Mapping[str, Any], source: Mapping[str, Any] | None) -> str:
    head = json.dumps(action, separators=(",", ":"), ensure_ascii=False) + "\n"
    if source is None:
        return head
    return head + json.dumps(source, separators=(",", ":"), ensure_ascii=False) + "\n"


def _reason(exc: Any) -> str:
    info = getattr(exc, "info", None)
    if isinstance(info, Mapping):
        error = info.get("error")
        if isinstance(error, Mapping):
            return f"{error.get('type')}: {error.get('reason')}"
        if error is not None:
            return str(error)
    return str(getattr(exc, "error", exc))
