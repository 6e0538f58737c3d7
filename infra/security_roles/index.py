"""CloudFormation custom resource: the buffer domain's fine-grained access control roles.

Deployed as a plain Lambda from this folder (``Code.from_asset``, no bundling, no Docker): the
standard library and the boto3/botocore of the Lambda runtime only. It assumes the domain's IAM
master role, signs each request with SigV4 (service ``es``) and puts, through the OpenSearch
security REST API, one role per entry of ``Roles`` (``PUT _plugins/_security/api/roles/NAME``)
and its mapping to IAM role ARNs as backend roles (``PUT
_plugins/_security/api/rolesmapping/NAME``). An update deletes the roles the old properties had
and the new ones do not; a delete removes its roles (best effort: the domain is retained, and a
failure there must not block the stack's deletion). It answers CloudFormation itself, on the
pre-signed ``ResponseURL``.

Resource properties::

    Endpoint       https://DOMAIN-ENDPOINT (no trailing slash)
    Region         the domain's region (SigV4 scope)
    MasterRoleArn  the IAM role that is the domain's master user
    Roles          {NAME: {"cluster_permissions": [...], "index_permissions": [...],
                           "backend_roles": [IAM role ARN, ...]}}
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger()
logger.setLevel(logging.INFO)

API = "/_plugins/_security/api"
ATTEMPTS = 6  # a new domain's security index may answer 503 for a while
PAUSE_SECONDS = 5.0  # times the attempt number, between attempts
RETRYABLE = (429, 500, 502, 503, 504)

Signer = Callable[[str, str, bytes], Mapping[str, str]]


class SecurityApiError(Exception):
    pass


def handler(event: Mapping[str, Any], context: Any) -> None:
    """The Lambda entry point: do the request's work, then answer CloudFormation (always)."""
    props = event.get("ResourceProperties", {})
    physical = event.get("PhysicalResourceId") or f"{props.get('Endpoint', '')}/security-roles"
    status, reason = "SUCCESS", ""
    try:
        request_type = event["RequestType"]
        if request_type in ("Create", "Update"):
            signer = _signer(props["MasterRoleArn"], props["Region"])
            put_roles(props["Endpoint"], props["Roles"], signer)
            if request_type == "Update":
                old = event.get("OldResourceProperties", {}).get("Roles", {})
                gone = [name for name in old if name not in props["Roles"]]
                delete_roles(props["Endpoint"], gone, signer)
        elif request_type == "Delete":
            try:
                signer = _signer(props["MasterRoleArn"], props["Region"])
                delete_roles(props["Endpoint"], list(props["Roles"]), signer)
            except Exception:  # the domain is retained: never block the stack's deletion
                logger.exception("could not delete the security roles; left in place")
        else:
            raise ValueError(f"unknown RequestType {request_type!r}")
    except Exception as exc:
        logger.exception("security roles %s failed", event.get("RequestType"))
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:1000]
    respond(event, status, reason, physical)


def put_roles(endpoint: str, roles: Mapping[str, Mapping[str, Any]], sign: Signer) -> None:
    for name, spec in roles.items():
        role = {
            "cluster_permissions": list(spec.get("cluster_permissions", [])),
            "index_permissions": [
                {
                    "index_patterns": list(p["index_patterns"]),
                    "allowed_actions": list(p["allowed_actions"]),
                }
                for p in spec.get("index_permissions", [])
            ],
        }
        mapping = {"backend_roles": list(spec.get("backend_roles", [])), "hosts": [], "users": []}
        call(endpoint, "PUT", f"{API}/roles/{_quote(name)}", role, sign)
        call(endpoint, "PUT", f"{API}/rolesmapping/{_quote(name)}", mapping, sign)


def delete_roles(endpoint: str, names: list[str], sign: Signer) -> None:
    for name in names:  # the mapping first: an unmapped role grants nothing
        call(endpoint, "DELETE", f"{API}/rolesmapping/{_quote(name)}", None, sign, missing_ok=True)
        call(endpoint, "DELETE", f"{API}/roles/{_quote(name)}", None, sign, missing_ok=True)


def call(
    endpoint: str,
    method: str,
    path: str,
    body: Mapping[str, Any] | None,
    sign: Signer,
    *,
    missing_ok: bool = False,
    attempts: int = ATTEMPTS,
) -> Any:
    """One signed request; retried on throttling, 5xx and dropped connections."""
    url = endpoint.rstrip("/") + path
    data = b"" if body is None else json.dumps(body).encode()
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json", **sign(method, url, data)}
        request = urllib.request.Request(
            url, data=data if body is not None else None, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = answer.read().decode() or "{}"
                logger.info("%s %s: %s", method, path, answer.status)
                return json.loads(text)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 404 and missing_ok:
                return None
            if exc.code not in RETRYABLE or attempt == attempts:
                raise SecurityApiError(f"{method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == attempts:
                raise SecurityApiError(f"{method} {path}: {exc}") from None
        time.sleep(PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")


def respond(event: Mapping[str, Any], status: str, reason: str, physical: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or "see the function's log",
            "PhysicalResourceId": physical,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "NoEcho": False,
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        logger.info("answered CloudFormation %s: %s", status, answer.status)


def _signer(master_role_arn: str, region: str) -> Signer:
    """SigV4 headers (service ``es``) with the credentials of ``master_role_arn``."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    sts = boto3.client("sts", region_name=region)
    answer = sts.assume_role(RoleArn=master_role_arn, RoleSessionName="qldb-settle-security")
    c = answer["Credentials"]
    credentials = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    def sign(method: str, url: str, data: bytes) -> Mapping[str, str]:
        request = AWSRequest(
            method=method, url=url, data=data, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(credentials, "es", region).add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}

    return sign


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")
