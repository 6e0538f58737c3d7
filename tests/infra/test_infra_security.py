"""The buffer domain's sizing and security, the VPC option, retention and the raw backup.

The security roles custom resource (``infra/security_roles/index.py``) runs here against a real
HTTP server on localhost (``http.server`` in a thread) that plays STS (AssumeRole), the
OpenSearch security REST API and CloudFormation's pre-signed response URL, and records every
request with its headers and body.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK tests need aws-cdk-lib (the main environment)")

from infra.buffer import RUNTIME_CLUSTER_ACTIONS, RUNTIME_INDEX_ACTIONS
from infra.config import Config
from infra.security_roles import index as security_roles
from runtime.errors import ConfigError
from tests.infra.conftest import OPERATOR_ROLE, Synthesized

MASTER = "arn:aws:iam::111122223333:role/qldb-settle-buffer-master"
INGEST = "arn:aws:iam::111122223333:role/ingest"
SETTLER = "arn:aws:iam::111122223333:role/settler"
ASSUMED_KEY = "ASIAMASTERSESSIONKEY"
ASSUMED_TOKEN = "master-session-token"

STS_ANSWER = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{ASSUMED_KEY}</AccessKeyId>
      <SecretAccessKey>master-session-secret</SecretAccessKey>
      <SessionToken>{ASSUMED_TOKEN}</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROAEXAMPLE:qldb-settle-security</AssumedRoleId>
      <Arn>arn:aws:sts::111122223333:assumed-role/qldb-settle-buffer-master/s</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>sts-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""


STS_DENIED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
  <Message>not authorized to perform: sts:AssumeRole</Message></Error>
  <RequestId>sts-2</RequestId>
</ErrorResponse>"""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeAws:
    """What the server saw, and the statuses it answers next per (method, path)."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    answers: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def api(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen if s.path.startswith("/_plugins/")]

    def cfn(self) -> dict[str, Any]:
        (answer,) = [s for s in self.seen if s.path.startswith("/cfn-response")]
        parsed: dict[str, Any] = answer.json()
        return parsed


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    state = FakeAws(url="")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            queued = state.answers.get((self.command, self.path))
            status = queued.pop(0) if queued else 200
            if self.command == "POST" and self.path == "/":  # STS
                self._answer(
                    status, (STS_ANSWER if status == 200 else STS_DENIED).encode(), "text/xml"
                )
                return
            reply = {"status": "OK" if status < 300 else "ERROR", "message": f"HTTP {status}"}
            self._answer(status, json.dumps(reply).encode(), "application/json")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    # The Lambda's own credentials (what it assumes the master role with) and STS here.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONROLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "function-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", state.url)
    monkeypatch.setattr(security_roles, "PAUSE_SECONDS", 0.0)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def roles(*names: str) -> dict[str, Any]:
    specs = {
        "qs-ingest": {
            "cluster_permissions": ["indices:data/write/bulk"],
            "index_permissions": [
                {"index_patterns": ["qs-*"], "allowed_actions": ["indices:data/write/index"]}
            ],
            "backend_roles": [INGEST],
        },
        "qs-settler": {
            "cluster_permissions": ["indices:data/read/mget"],
            "index_permissions": [
                {"index_patterns": ["qs-*"], "allowed_actions": ["indices:data/read/search*"]}
            ],
            "backend_roles": [SETTLER],
        },
    }
    return {n: specs[n] for n in names}


def event(fake: FakeAws, request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": f"{fake.url}/cfn-response?X-Amz-Signature=abc",
        "StackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/svc/1",
        "RequestId": "req-1",
        "LogicalResourceId": "BufferSecurityRoles",
        "ResourceType": "Custom::OpenSearchSecurityRoles",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:111122223333:function:sr",
            "Endpoint": fake.url,
            "Region": "eu-west-1",
            "MasterRoleArn": MASTER,
            "Roles": roles("qs-ingest", "qs-settler"),
        },
        **extra,
    }


# The custom resource handler, against the local server ---------------------------------------


def test_create_puts_each_role_and_its_mapping_signed_as_the_master_role(
    fake_aws: FakeAws,
) -> None:
    security_roles.handler(event(fake_aws, "Create"), None)

    (sts,) = [s for s in fake_aws.seen if s.path == "/"]
    form = urllib.parse.parse_qs(sts.body.decode())
    assert form["Action"] == ["AssumeRole"] and form["RoleArn"] == [MASTER]
    assert "Credential=AKIAFUNCTIONROLEKEY/" in sts.headers["Authorization"]

    api = "/_plugins/_security/api"
    assert fake_aws.api() == [
        ("PUT", f"{api}/roles/qs-ingest"),
        ("PUT", f"{api}/rolesmapping/qs-ingest"),
        ("PUT", f"{api}/roles/qs-settler"),
        ("PUT", f"{api}/rolesmapping/qs-settler"),
    ]
    by_path = {s.path: s for s in fake_aws.seen}
    assert by_path[f"{api}/roles/qs-ingest"].json() == {
        "cluster_permissions": ["indices:data/write/bulk"],
        "index_permissions": [
            {"index_patterns": ["qs-*"], "allowed_actions": ["indices:data/write/index"]}
        ],
    }
    assert by_path[f"{api}/rolesmapping/qs-settler"].json() == {
        "backend_roles": [SETTLER],
        "hosts": [],
        "users": [],
    }
    for s in fake_aws.seen:
        if s.path.startswith("/_plugins/"):
            auth = s.headers["Authorization"]
            assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={ASSUMED_KEY}/")
            assert "/eu-west-1/es/aws4_request" in auth
            assert s.headers["X-Amz-Security-Token"] == ASSUMED_TOKEN
            assert s.headers["Content-Type"] == "application/json"
    answer = fake_aws.cfn()
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == f"{fake_aws.url}/security-roles"
    assert (answer["RequestId"], answer["LogicalResourceId"]) == ("req-1", "BufferSecurityRoles")


def test_a_refused_put_fails_the_resource_with_the_reason(fake_aws: FakeAws) -> None:
    fake_aws.answers[("PUT", "/_plugins/_security/api/roles/qs-ingest")] = [403]
    security_roles.handler(event(fake_aws, "Create"), None)
    assert fake_aws.api() == [("PUT", "/_plugins/_security/api/roles/qs-ingest")]
    answer = fake_aws.cfn()
    assert answer["Status"] == "FAILED"
    assert "HTTP 403" in answer["Reason"] and "roles/qs-ingest" in answer["Reason"]


def test_a_domain_not_ready_yet_is_retried(fake_aws: FakeAws) -> None:
    fake_aws.answers[("PUT", "/_plugins/_security/api/roles/qs-ingest")] = [503, 503]
    security_roles.handler(event(fake_aws, "Create"), None)
    assert fake_aws.api()[:3] == [("PUT", "/_plugins/_security/api/roles/qs-ingest")] * 3
    assert fake_aws.cfn()["Status"] == "SUCCESS"


def test_an_update_deletes_the_roles_it_no_longer_has(fake_aws: FakeAws) -> None:
    update = event(
        fake_aws,
        "Update",
        PhysicalResourceId="kept-id",
        OldResourceProperties={"Roles": roles("qs-ingest", "qs-settler")},
    )
    update["ResourceProperties"]["Roles"] = roles("qs-ingest")
    fake_aws.answers[("DELETE", "/_plugins/_security/api/roles/qs-settler")] = [404]
    security_roles.handler(update, None)
    api = "/_plugins/_security/api"
    assert fake_aws.api() == [
        ("PUT", f"{api}/roles/qs-ingest"),
        ("PUT", f"{api}/rolesmapping/qs-ingest"),
        ("DELETE", f"{api}/rolesmapping/qs-settler"),  # unmapped first: it grants nothing
        ("DELETE", f"{api}/roles/qs-settler"),  # already gone (404): fine
    ]
    answer = fake_aws.cfn()
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "kept-id")


def test_a_master_role_it_cannot_assume_fails_a_create(fake_aws: FakeAws) -> None:
    fake_aws.answers[("POST", "/")] = [403]
    security_roles.handler(event(fake_aws, "Create"), None)
    assert fake_aws.api() == []
    answer = fake_aws.cfn()
    assert answer["Status"] == "FAILED" and "AssumeRole" in answer["Reason"]


def test_a_delete_that_cannot_even_assume_the_master_still_succeeds(fake_aws: FakeAws) -> None:
    fake_aws.answers[("POST", "/")] = [403]
    security_roles.handler(event(fake_aws, "Delete", PhysicalResourceId="kept-id"), None)
    assert fake_aws.api() == []
    assert fake_aws.cfn()["Status"] == "SUCCESS"


def test_a_delete_that_fails_does_not_block_the_stack(fake_aws: FakeAws) -> None:
    for name in ("qs-ingest", "qs-settler"):
        fake_aws.answers[("DELETE", f"/_plugins/_security/api/rolesmapping/{name}")] = [403]
    security_roles.handler(event(fake_aws, "Delete", PhysicalResourceId="kept-id"), None)
    assert fake_aws.api() == [("DELETE", "/_plugins/_security/api/rolesmapping/qs-ingest")]
    assert fake_aws.cfn()["Status"] == "SUCCESS"


# The synthesized domain -----------------------------------------------------------------------


def one(synth: Synthesized, type_: str) -> tuple[str, dict[str, Any]]:
    ((rid, resource),) = synth.resources("Service", type_).items()
    return rid, resource


def function_role(synth: Synthesized, handler: str) -> str:
    for f in synth.resources("Service", "AWS::Lambda::Function").values():
        if f["Properties"]["Handler"] == handler:
            role: str = f["Properties"]["Role"]["Fn::GetAtt"][0]
            return role
    raise AssertionError(handler)


def role_statements(synth: Synthesized, role_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in synth.resources("Service", "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def actions(statement: Mapping[str, Any]) -> list[str]:
    a = statement["Action"]
    return a if isinstance(a, list) else [a]


def test_production_domain_has_three_masters_three_zones_fgac_and_tls_pfs(
    default_app: Synthesized,
) -> None:
    _, domain = one(default_app, "AWS::OpenSearchService::Domain")
    props = domain["Properties"]
    assert props["ClusterConfig"] == {
        "DedicatedMasterCount": 3,
        "DedicatedMasterEnabled": True,
        "DedicatedMasterType": "m6g.large.search",
        "InstanceCount": 3,
        "InstanceType": "r6g.large.search",
        "MultiAZWithStandbyEnabled": False,
        "ZoneAwarenessConfig": {"AvailabilityZoneCount": 3},
        "ZoneAwarenessEnabled": True,
    }
    assert props["AdvancedSecurityOptions"]["Enabled"] is True
    assert props["AdvancedSecurityOptions"]["InternalUserDatabaseEnabled"] is False
    master_arn = props["AdvancedSecurityOptions"]["MasterUserOptions"]["MasterUserARN"]
    master_role = default_app.templates["Service"]["Resources"][master_arn["Fn::GetAtt"][0]]
    assert master_role["Type"] == "AWS::IAM::Role"
    assert "RoleName" not in master_role["Properties"]  # IAM names are account-wide
    output = default_app.templates["Service"]["Outputs"]["BufferMasterRoleArn"]
    assert output["Value"] == master_arn
    (trust,) = master_role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert json.dumps(trust["Principal"]).endswith(':root"]]}}')  # this account's principals
    assert props["DomainEndpointOptions"] == {
        "EnforceHTTPS": True,
        "TLSSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
    }
    assert props["EncryptionAtRestOptions"] == {"Enabled": True}
    assert props["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert "VPCOptions" not in props  # the public endpoint by default


def test_resource_policy_principals_and_no_http_delete_but_for_the_master(
    default_app: Synthesized,
) -> None:
    _, domain = one(default_app, "AWS::OpenSearchService::Domain")
    functions, master = domain["Properties"]["AccessPolicies"]["Statement"]
    ingest = function_role(default_app, "handlers.ingest.handler")
    settler = function_role(default_app, "handlers.settler.handler")
    assert [p["Fn::GetAtt"][0] for p in functions["Principal"]["AWS"]] == [ingest, settler]
    assert functions["Action"] == ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"]
    master_arn = domain["Properties"]["AdvancedSecurityOptions"]["MasterUserOptions"]
    assert master["Principal"] == {"AWS": master_arn["MasterUserARN"]}
    assert master["Action"] == "es:ESHttp*"
    for statement in (functions, master):
        assert json.dumps(statement["Resource"]).endswith(':domain/qldb-settle/*"]]}')


def test_the_ingest_role_cannot_delete_an_index_by_iam_nor_by_fgac(
    default_app: Synthesized,
) -> None:
    """Both layers: IAM gives the ingest role no es:ESHttpDelete (its own policy nor the
    domain's), and its security role has no index deletion, nor any wildcard action group."""
    ingest = function_role(default_app, "handlers.ingest.handler")
    es = [a for s in role_statements(default_app, ingest) for a in actions(s) if a[:3] == "es:"]
    assert sorted(es) == ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"]
    _, resource = one(default_app, "Custom::OpenSearchSecurityRoles")
    spec = resource["Properties"]["Roles"]["qldb-settle-ingest"]
    assert spec["backend_roles"] == [{"Fn::GetAtt": [ingest, "Arn"]}]
    granted = [*spec["cluster_permissions"]]
    for entry in spec["index_permissions"]:
        assert entry["index_patterns"] == ["qldb-settle-*"]  # the index prefix only
        granted.extend(entry["allowed_actions"])
    for action in granted:
        assert not action.startswith(("indices:admin/delete", "indices:admin/close")), action
        assert action not in ("*", "indices:*", "indices_all", "unlimited", "crud", "manage")
        assert not action.startswith(("cluster:admin", "indices:admin/mapping")), action
        assert not action.startswith("indices:admin/settings"), action


def test_security_roles_map_each_caller_to_its_role_and_run_as_the_master(
    existing_app: Synthesized,
) -> None:
    rid, resource = one(existing_app, "Custom::OpenSearchSecurityRoles")
    props = resource["Properties"]
    ingest = function_role(existing_app, "handlers.ingest.handler")
    settler = function_role(existing_app, "handlers.settler.handler")
    mapped = {name: spec["backend_roles"] for name, spec in props["Roles"].items()}
    assert mapped == {
        "qldb-settle-ingest": [{"Fn::GetAtt": [ingest, "Arn"]}],
        "qldb-settle-settler": [{"Fn::GetAtt": [settler, "Arn"]}],
        "qldb-settle-operator": [OPERATOR_ROLE],
    }
    for spec in props["Roles"].values():
        assert spec["cluster_permissions"] == list(RUNTIME_CLUSTER_ACTIONS)
        assert spec["index_permissions"] == [
            {"index_patterns": ["qldb-settle-*"], "allowed_actions": list(RUNTIME_INDEX_ACTIONS)}
        ]
    domain_id, domain = one(existing_app, "AWS::OpenSearchService::Domain")
    master = domain["Properties"]["AdvancedSecurityOptions"]["MasterUserOptions"]
    assert props["MasterRoleArn"] == master["MasterUserARN"]
    assert props["Endpoint"] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [domain_id, "DomainEndpoint"]}]]
    }
    # Its function: the asset handler, allowed to assume the master role and nothing else of AWS.
    function = existing_app.templates["Service"]["Resources"][
        props["ServiceToken"]["Fn::GetAtt"][0]
    ]
    assert function["Properties"]["Handler"] == "index.handler"
    cr_role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assumes = [s for s in role_statements(existing_app, cr_role) if "sts:AssumeRole" in actions(s)]
    assert [s["Resource"] for s in assumes] == [master["MasterUserARN"]]
    # The functions wait for their roles (no 403 window after a first deploy).
    resources = existing_app.templates["Service"]["Resources"]
    for handler in ("handlers.ingest.handler", "handlers.settler.handler"):
        (fn,) = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == handler
        ]
        assert rid in fn["DependsOn"]


def test_a_given_master_role_is_used_and_none_is_created(
    default_app: Synthesized, synthesize: Callable[[Mapping[str, Any]], Synthesized]
) -> None:
    given = "arn:aws:iam::111122223333:role/opensearch-admin"
    synth = synthesize({"openSearchMasterRoleArn": given})
    _, domain = one(synth, "AWS::OpenSearchService::Domain")
    assert domain["Properties"]["AdvancedSecurityOptions"]["MasterUserOptions"] == {
        "MasterUserARN": given
    }
    assert synth.templates["Service"]["Outputs"]["BufferMasterRoleArn"]["Value"] == given
    trusted = [
        statement["Principal"]
        for r in synth.resources("Service", "AWS::IAM::Role").values()
        for statement in r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert trusted and all(set(p) == {"Service"} for p in trusted)  # no master role created
    default_trusts = [
        s["Principal"]
        for r in default_app.resources("Service", "AWS::IAM::Role").values()
        for s in r["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert any("AWS" in p for p in default_trusts)  # ... which the default app does


# Profiles and their checks --------------------------------------------------------------------


def test_dev_profile_is_one_small_node(
    synthesize: Callable[[Mapping[str, Any]], Synthesized],
) -> None:
    _, domain = one(synthesize({"profile": "dev"}), "AWS::OpenSearchService::Domain")
    cluster = domain["Properties"]["ClusterConfig"]
    assert cluster["InstanceCount"] == 1 and cluster["InstanceType"] == "t3.small.search"
    assert cluster["DedicatedMasterEnabled"] is False
    assert cluster["ZoneAwarenessEnabled"] is False
    assert domain["Properties"]["AdvancedSecurityOptions"]["Enabled"] is True  # FGAC still


def test_profile_defaults_yield_to_explicit_keys() -> None:
    dev = Config.from_context({"profile": "dev", "openSearchInstanceType": "t3.medium.search"}.get)
    assert (dev.open_search_instance_type, dev.open_search_data_nodes) == ("t3.medium.search", 1)
    prod = Config.from_context({"openSearchMasterNodes": "5", "openSearchDataNodes": "auto"}.get)
    assert (prod.open_search_master_nodes, prod.open_search_data_nodes) == (5, 3)


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"profile": "staging"}, "profile"),
        ({"openSearchMasterNodes": "4"}, "openSearchMasterNodes"),
        (  # two master-eligible nodes lose the master with one
            {
                "openSearchMasterNodes": "0",
                "openSearchDataNodes": "2",
                "openSearchAvailabilityZones": "2",
            },
            "openSearchMasterNodes",
        ),
        (
            {"openSearchAvailabilityZones": "1", "openSearchDataNodes": "3"},
            "openSearchAvailabilityZones",
        ),
        ({"openSearchDataNodes": "4"}, "openSearchDataNodes"),  # not a multiple of 3 zones
        (
            {"profile": "dev", "openSearchDataNodes": "3", "openSearchAvailabilityZones": "2"},
            "openSearchDataNodes",
        ),
        ({"openSearchMasterRoleArn": "admin"}, "openSearchMasterRoleArn"),
    ],
)
def test_bad_domain_combinations_are_refused(context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_context(context.get)


def test_three_data_nodes_without_masters_is_a_quorum() -> None:
    config = Config.from_context({"openSearchMasterNodes": "0"}.get)
    assert (config.open_search_master_nodes, config.open_search_data_nodes) == (0, 3)


# The VPC option --------------------------------------------------------------------------------

VPC = {
    "vpcId": "vpc-0123456789abcdef0",
    "vpcSubnetIds": "subnet-0aaaaaaaaaaaaaaa1,subnet-0aaaaaaaaaaaaaaa2,subnet-0aaaaaaaaaaaaaaa3",
    "vpcAvailabilityZones": "eu-west-1a,eu-west-1b,eu-west-1c",
}
SUBNETS = VPC["vpcSubnetIds"].split(",")


def test_the_domain_and_its_callers_join_the_given_vpc(
    synthesize: Callable[[Mapping[str, Any]], Synthesized],
) -> None:
    synth = synthesize(VPC)
    _, domain = one(synth, "AWS::OpenSearchService::Domain")
    options = domain["Properties"]["VPCOptions"]
    assert options["SubnetIds"] == SUBNETS
    (domain_sg,) = options["SecurityGroupIds"]
    domain_sg_id = domain_sg["Fn::GetAtt"][0]
    groups = synth.resources("Service", "AWS::EC2::SecurityGroup")
    (client_id,) = [g for g in groups if g != domain_sg_id]  # two groups: the domain's, clients'
    for group in groups.values():
        assert group["Properties"]["VpcId"] == VPC["vpcId"]
    # The domain admits the clients' group on 443 and nothing else; it sends nothing out.
    assert "SecurityGroupIngress" not in groups[domain_sg_id]["Properties"]
    (ingress,) = synth.resources("Service", "AWS::EC2::SecurityGroupIngress").values()
    assert ingress["Properties"] == {
        "Description": "HTTPS from the buffer's clients",
        "FromPort": 443,
        "GroupId": {"Fn::GetAtt": [domain_sg_id, "GroupId"]},
        "IpProtocol": "tcp",
        "SourceSecurityGroupId": {"Fn::GetAtt": [client_id, "GroupId"]},
        "ToPort": 443,
    }
    egress = groups[domain_sg_id]["Properties"]["SecurityGroupEgress"]
    assert [e["CidrIp"] for e in egress] == ["255.255.255.255/32"]  # CDK's "no egress"
    handlers = {
        f["Properties"]["Handler"]: f["Properties"]
        for f in synth.resources("Service", "AWS::Lambda::Function").values()
    }
    assert set(handlers) == {"handlers.ingest.handler", "handlers.settler.handler", "index.handler"}
    for props in handlers.values():
        assert props["VpcConfig"] == {
            "SecurityGroupIds": [{"Fn::GetAtt": [client_id, "GroupId"]}],
            "SubnetIds": SUBNETS,
        }


def test_the_public_endpoint_by_default_puts_no_function_in_a_vpc(
    default_app: Synthesized,
) -> None:
    assert not default_app.resources("Service", "AWS::EC2::SecurityGroup")
    for f in default_app.resources("Service", "AWS::Lambda::Function").values():
        assert "VpcConfig" not in f["Properties"]


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({**VPC, "vpcId": ""}, "vpcId"),
        ({**VPC, "vpcSubnetIds": "subnet-0aaaaaaaaaaaaaaa1"}, "vpcSubnetIds"),
        ({**VPC, "vpcSubnetIds": "subnet-1,subnet-2,subnet-3"}, "vpcSubnetIds"),
        ({**VPC, "vpcAvailabilityZones": "eu-west-1a,eu-west-1a,eu-west-1b"}, "vpcAvailability"),
        ({**VPC, "destination": "postgresql"}, "vpcId"),
    ],
)
def test_bad_vpc_options_are_refused(context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_context(context.get)


# Retention -------------------------------------------------------------------------------------


def settler_environment(synth: Synthesized) -> dict[str, Any]:
    for f in synth.resources("Service", "AWS::Lambda::Function").values():
        if f["Properties"]["Handler"] == "handlers.settler.handler":
            env: dict[str, Any] = f["Properties"]["Environment"]["Variables"]
            return env
    raise AssertionError("no settler")


def test_buffer_retention_reaches_the_settler_as_it_reads_it(
    default_app: Synthesized, synthesize: Callable[[Mapping[str, Any]], Synthesized]
) -> None:
    assert "QLDB_SETTLE_RETENTION_DAYS" not in settler_environment(default_app)  # keep all
    env = settler_environment(synthesize({"bufferRetentionDays": "30"}))
    assert env["QLDB_SETTLE_RETENTION_DAYS"] == "30"
    from compose.settings import Settings, retention_of

    assert retention_of(Settings.from_env({"QLDB_SETTLE_RETENTION_DAYS": "30"})) == timedelta(
        days=30
    )
    with pytest.raises(ConfigError, match="bufferRetentionDays"):
        Config.from_context({"bufferRetentionDays": "-1"}.get)


# The raw journal backup ------------------------------------------------------------------------


def streaming(synth: Synthesized, type_: str) -> dict[str, dict[str, Any]]:
    return synth.resources("Streaming", type_)


def backup_bucket(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (rid, b)
        for rid, b in streaming(synth, "AWS::S3::Bucket").items()
        if "VersioningConfiguration" in b["Properties"]
    ]
    return found


def test_firehose_may_only_add_backup_objects(default_app: Synthesized) -> None:
    (delivery,) = streaming(default_app, "AWS::KinesisFirehose::DeliveryStream").values()
    writer_id = delivery["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"][
        "Fn::GetAtt"
    ][0]
    bucket_id, _ = backup_bucket(default_app)
    granted: list[str] = []
    s3_resources: list[Any] = []
    for policy in streaming(default_app, "AWS::IAM::Policy").values():
        if {"Ref": writer_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            granted.extend(actions(statement))
            if any(a.startswith("s3:") for a in actions(statement)):
                s3_resources.append(statement["Resource"])
    assert sorted(a for a in granted if a.startswith("s3:")) == [
        "s3:AbortMultipartUpload",
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:ListBucketMultipartUploads",
        "s3:PutObject",
    ]
    assert not [a for a in granted if "*" in a]  # no action group, no Delete*/GetObject*
    kms = sorted(a for a in granted if a.startswith("kms:"))
    assert kms == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert all(bucket_id in json.dumps(r) for r in s3_resources)
    # Another account cannot make Firehose write (or read the stream) with these roles.
    reader_id = delivery["Properties"]["KinesisStreamSourceConfiguration"]["RoleARN"]["Fn::GetAtt"][
        0
    ]
    for rid in (writer_id, reader_id):
        role = default_app.templates["Streaming"]["Resources"][rid]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        }


def test_backup_lifecycle_and_log_retention(default_app: Synthesized) -> None:
    _, bucket = backup_bucket(default_app)
    (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 90}]
    assert "ObjectLockConfiguration" not in bucket["Properties"]  # off unless asked
    (delivery,) = streaming(default_app, "AWS::KinesisFirehose::DeliveryStream").values()
    destination = delivery["Properties"]["ExtendedS3DestinationConfiguration"]
    logging = destination["CloudWatchLoggingOptions"]
    group = default_app.templates["Streaming"]["Resources"][logging["LogGroupName"]["Ref"]]
    assert group["Properties"]["RetentionInDays"] == 30  # logRetentionDays


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_object_lock_option(
    mode: str, synthesize: Callable[[Mapping[str, Any]], Synthesized]
) -> None:
    synth = synthesize({"backupObjectLock": mode, "backupObjectLockDays": "400"})
    _, bucket = backup_bucket(synth)
    assert bucket["Properties"]["ObjectLockEnabled"] is True
    assert bucket["Properties"]["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Days": 400, "Mode": mode}},
    }
    with pytest.raises(ConfigError, match="backupObjectLock"):
        Config.from_context({"backupObjectLock": "LEGAL_HOLD"}.get)


def test_the_journal_stream_role_trusts_qldb_for_this_ledger_only(qldb_app: Synthesized) -> None:
    roles = streaming(qldb_app, "AWS::IAM::Role")
    (role,) = [
        r
        for r in roles.values()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "qldb.amazonaws.com"}
    ]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    condition = trust["Condition"]
    assert condition["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    arns = [json.dumps(a) for a in condition["ArnLike"]["aws:SourceArn"]]
    assert len(arns) == 2
    assert arns[0].endswith(':ledger/qldb-settle-source"]]}')
    assert arns[1].endswith(':stream/qldb-settle-source/*"]]}')


# The security roles cover what the buffer sends --------------------------------------------------

# The security plugin's action names of each opensearch-py method buffer/opensearch*.py calls,
# as (level, action): the request's own, its shard-level parts, and for delete_by_query the
# search, scroll and bulk deletes it runs as the caller.
METHOD_ACTIONS: dict[str, list[tuple[str, str]]] = {
    "indices.put_index_template": [("cluster", "indices:admin/index_template/put")],
    "indices.exists": [("index", "indices:admin/get")],
    "indices.create": [("index", "indices:admin/create")],
    "indices.refresh": [("index", "indices:admin/refresh"), ("index", "indices:admin/refresh[s]")],
    "mget": [("cluster", "indices:data/read/mget"), ("index", "indices:data/read/mget[shard]")],
    "msearch": [("cluster", "indices:data/read/msearch"), ("index", "indices:data/read/search")],
    "search": [("index", "indices:data/read/search")],
    "count": [("index", "indices:data/read/search")],
    "create": [("index", "indices:data/write/index"), ("index", "indices:data/write/bulk[s]")],
    "update": [("index", "indices:data/write/update")],
    "delete_by_query": [
        ("index", "indices:data/write/delete/byquery"),
        ("index", "indices:data/read/search"),
        ("cluster", "indices:data/read/scroll"),
        ("cluster", "indices:data/read/scroll/clear"),
        ("cluster", "indices:data/write/bulk"),
        ("index", "indices:data/write/bulk[s]"),
        ("index", "indices:data/write/delete"),
    ],
    "bulk": [("cluster", "indices:data/write/bulk"), ("index", "indices:data/write/bulk[s]")],
}
BULK_ITEM_ACTIONS = {
    "create": "indices:data/write/index",
    "index": "indices:data/write/index",
    "update": "indices:data/write/update",
    "delete": "indices:data/write/delete",
}


def test_the_security_roles_cover_every_request_the_buffer_sends() -> None:
    """Every opensearch-py method and bulk item type in buffer/ must be listed above (a new one
    fails here until it is), and each action it needs is granted, at its level."""
    import fnmatch
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "buffer"
    # The adapter and its parts (not the local server or the logging proxy, which serve tests).
    modules = sorted(
        set(root.glob("opensearch*.py"))
        - {root / "opensearch_local.py", root / "opensearch_proxy.py"}
    )
    assert root / "opensearch_put.py" in modules  # the glob still finds the parts
    source = "".join(m.read_text() for m in modules)
    methods = set(re.findall(r'request\(\s*(?:f?"[^"]*"|[^,()]+),\s*"([a-z_.]+)"', source, re.S))
    assert {"mget", "search", "delete_by_query", "bulk"} <= methods  # the pattern still works
    assert methods <= set(METHOD_ACTIONS), sorted(methods - set(METHOD_ACTIONS))
    items = set(re.findall(r'\{"(create|index|update|delete)": (?:\{"_index"|meta\})', source))
    assert items == set(BULK_ITEM_ACTIONS)
    granted = {"cluster": RUNTIME_CLUSTER_ACTIONS, "index": RUNTIME_INDEX_ACTIONS}
    needed = [a for m in sorted(methods) for a in METHOD_ACTIONS[m]]
    needed += [("index", a) for a in BULK_ITEM_ACTIONS.values()]
    for level, action in needed:
        assert any(fnmatch.fnmatchcase(action, g) for g in granted[level]), (level, action)
    # ... and nothing of index administration beyond creating one.
    for g in RUNTIME_INDEX_ACTIONS:
        if g.startswith("indices:admin/"):
            assert g in ("indices:admin/create", "indices:admin/get", "indices:admin/refresh*"), g
