"""What is particular to ``OpenSearchBuffer`` (the contract suite checks the port's guarantees):
indices and templates, URLs and authentication, the mapping of errors, the refresh strategy,
bounded bulk requests, and the lease's conditional writes, against osmem-server over HTTP."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from opensearch_support import OpenBuffer

from buffer.opensearch import OpenSearchBuffer
from buffer.opensearch_client import Endpoint, OpenSearchError, RetryPolicy
from buffer.opensearch_local import LocalOpenSearch
from buffer.opensearch_proxy import FaultProxy
from buffer.opensearch_schema import MAPPINGS, Indices
from journal.errors import InputError, SettleError
from runtime.errors import ConfigError, TransientError

from synth import SYNTH_LEDGER, SYNTH_STRAND, SYNTH_T0, Synth  # isort: skip


# --- indices --------------------------------------------------------------------------------------


def test_indices_and_templates_are_created_once_and_opening_again_keeps_the_data(
    open_buffer: OpenBuffer, synth: Synth, prefix: str
) -> None:
    first = open_buffer()
    first.put(synth.incomings(synth.chain(2)))
    raw = first.client.raw
    for kind, name in first.indices.all().items():
        mapping = raw.indices.get_mapping(index=name)[name]["mappings"]
        assert mapping["dynamic"] == "strict"
        assert set(mapping["properties"]) == set(MAPPINGS[kind])
        template = raw.indices.get_index_template(name=name)["index_templates"][0]
        assert template["index_template"]["index_patterns"] == [name]
    blocks = raw.indices.get_mapping(index=first.indices.blocks)[first.indices.blocks]
    revisions = raw.indices.get_mapping(index=first.indices.revisions)[first.indices.revisions]
    # Ion data and raw copies are stored, never indexed.
    assert blocks["mappings"]["properties"]["summary"]["enabled"] is False
    assert revisions["mappings"]["properties"]["revision"]["enabled"] is False
    assert revisions["mappings"]["properties"]["raw"]["type"] == "binary"

    second = open_buffer()  # another Lambda starting: nothing is reset
    assert second.dump() == first.dump()
    assert len(second.blocks()) == 2


def test_a_buffer_written_by_a_newer_schema_is_refused(open_buffer: OpenBuffer) -> None:
    buf = open_buffer()
    buf.client.raw.index(
        index=buf.indices.meta, id="schema", body={"kind": "schema", "version": 99}
    )
    with pytest.raises(InputError, match="schema 99, newer"):
        open_buffer()


# --- URLs and authentication --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "auth", "sigv4", "region"),
    [
        ("https://search-ledger-abc123.eu-west-1.es.amazonaws.com", "auto", True, "eu-west-1"),
        ("https://vpc-ledger-abc123.us-east-2.es.amazonaws.com:443", "auto", True, "us-east-2"),
        ("https://search-ledger-abc123.eu-west-1.es.amazonaws.com", "none", False, "eu-west-1"),
        ("http://127.0.0.1:9200", "auto", False, None),
        ("http://opensearch.internal:9200", "sigv4", True, "ap-south-1"),
    ],
)
def test_the_url_chooses_sigv4_for_amazon_hosts(
    url: str, auth: str, sigv4: bool, region: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    if auth == "sigv4":
        monkeypatch.setenv("AWS_REGION", "ap-south-1")
    endpoint = Endpoint.parse(url, auth)
    assert (endpoint.sigv4, endpoint.region, endpoint.service) == (sigv4, region, "es")


@pytest.mark.parametrize(
    ("url", "auth", "message"),
    [
        ("ftp://host", "auto", "is not http"),
        ("http://", "auto", "is not http"),
        ("http://host:9200", "kerberos", "must be auto, sigv4 or none"),
        ("http://host:9200", "sigv4", "needs a region"),
    ],
)
def test_bad_urls_and_auth_are_configuration_errors(
    url: str, auth: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(ConfigError, match=message):
        Endpoint.parse(url, auth)


def test_a_prefix_that_cannot_name_an_index_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="not a valid OpenSearch index name"):
        Indices.for_prefix("Qldb Settle")


def test_sigv4_signs_every_request_with_the_sessions_credentials(
    open_buffer: OpenBuffer,
    proxy: FaultProxy,
    synth: Synth,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Made-up credentials in the environment (boto3's first source); no profile, no metadata.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE0000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-example")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    buf = open_buffer(proxy.url, auth="sigv4")
    buf.put(synth.incomings(synth.chain(2)))
    assert len(buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)) == 2
    assert len(proxy.log) > 5
    for entry in proxy.log:
        headers = {k.lower(): v for k, v in entry.headers.items()}
        authorization = headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE0000000000/")
        assert "/eu-west-1/es/aws4_request" in authorization
        assert "x-amz-date" in headers and headers["x-amz-security-token"] == (
            "session-token-example"
        )


def test_plain_http_sends_no_credentials(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth
) -> None:
    buf = open_buffer(proxy.url, auth="auto")
    buf.put(synth.incomings(synth.chain(1)))
    assert proxy.log
    assert not any("authorization" in {k.lower() for k in e.headers} for e in proxy.log)


# --- errors ---------------------------------------------------------------------------------------


def test_refused_credentials_are_a_configuration_error(
    open_buffer: OpenBuffer, proxy: FaultProxy
) -> None:
    proxy.arm("403", times=1_000)
    with pytest.raises(ConfigError, match=r"refused .* \(HTTP 403\).*access policy"):
        open_buffer(proxy.url)
    assert len(proxy.outcomes("403")) == 1  # not retried: retrying cannot fix it


def test_an_unreachable_server_is_a_transient_error_naming_it(osmem: LocalOpenSearch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    with pytest.raises(TransientError, match=r"127\.0\.0\.1 did not complete .* after 3 attempts"):
        OpenSearchBuffer.from_url(
            f"http://127.0.0.1:{port}",
            auth="none",
            index_prefix="unreachable",
            retry=RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002),
        )


def test_a_request_the_server_refuses_is_an_opensearch_error_and_not_retried(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth
) -> None:
    buf = open_buffer(proxy.url)
    buf.put(synth.incomings(synth.chain(1)))
    proxy.arm("400", path="/_search")
    with pytest.raises(OpenSearchError, match="HTTP 400") as refused:
        buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)
    assert isinstance(refused.value, SettleError) and not isinstance(refused.value, TransientError)
    assert len(proxy.outcomes("400")) == 1


# --- refresh strategy, bulk bounds ----------------------------------------------------------------


def test_every_search_of_the_settler_is_preceded_by_a_refresh(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth
) -> None:
    buf = open_buffer(proxy.url)
    buf.put(synth.incomings(synth.chain(3)))
    proxy.log.clear()
    assert len(buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)) == 3
    paths = [e.path.split("?")[0] for e in proxy.log]
    first_search = next(i for i, p in enumerate(paths) if p.endswith("/_search"))
    refreshed = paths[first_search - 1]
    assert refreshed.endswith("/_refresh") and buf.indices.blocks in refreshed

    lazy = open_buffer(proxy.url, refresh_before_read=False)
    proxy.log.clear()
    assert len(lazy.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)) == 3
    assert not any(e.path.split("?")[0].endswith("/_refresh") for e in proxy.log)


def test_bulk_requests_are_bounded_by_count_and_bytes(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth
) -> None:
    records = synth.incomings(synth.chain(20))
    buf = open_buffer(proxy.url, bulk_actions=7, bulk_bytes=12_000)
    report = buf.put(records)
    assert report.stored["blocks"] == 20
    bulks = [e.body for e in proxy.log if e.path.split("?")[0].endswith("/_bulk")]
    assert len(bulks) >= 6
    for body in bulks:
        actions = [json.loads(line) for line in body.decode().splitlines()[::2]]
        assert 1 <= len(actions) <= 7
        assert len(body) <= 12_000


# --- the lease ------------------------------------------------------------------------------------


def test_a_lease_write_whose_answer_is_lost_still_gives_the_lease(
    open_buffer: OpenBuffer, proxy: FaultProxy
) -> None:
    buf = open_buffer(proxy.url)
    other = open_buffer()
    fault = proxy.arm("lose-answer", path="lease")  # the create, applied, answer lost
    assert buf.acquire_lease("a", 30, SYNTH_T0)
    assert fault.fired == 1
    assert not other.acquire_lease("b", 30, SYNTH_T0 + timedelta(seconds=1))
    renew = proxy.arm("lose-answer", path="_update")  # the renewal, applied, answer lost
    assert buf.acquire_lease("a", 30, SYNTH_T0 + timedelta(seconds=20))
    assert renew.fired == 1
    assert not other.acquire_lease("b", 30, SYNTH_T0 + timedelta(seconds=45))  # renewed: T0+50


def _race(
    barrier: threading.Barrier, won: list[str], name: str, buf: OpenSearchBuffer, at: datetime
) -> None:
    barrier.wait()
    if buf.acquire_lease(name, 30, at):
        won.append(name)


def test_settlers_racing_for_the_lease_never_both_get_it(open_buffer: OpenBuffer) -> None:
    buffers = [open_buffer() for _ in range(4)]
    for round_ in range(6):
        now = SYNTH_T0 + timedelta(minutes=round_)  # the last round's lease has expired
        barrier = threading.Barrier(len(buffers))
        won: list[str] = []
        threads = [
            threading.Thread(target=_race, args=(barrier, won, f"settler-{i}", b, now))
            for i, b in enumerate(buffers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1, (round_, won)
