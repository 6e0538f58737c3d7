"""Where a record waits in AWS: the OpenSearch Service domain holding the settling buffer.

Sizing: three dedicated master nodes and three data nodes in three zones by default (the
``production`` profile): losing a node or a zone keeps a master quorum, so ingest and a
blue/green update go on. The ``dev`` profile is one small data node (no quorum to lose, no HA).

Security, in two layers:

- **IAM** (who may reach the domain at all): the domain's resource policy lets the function
  roles and the operators' roles call ``es:ESHttpGet/Head/Post/Put`` (no ``es:ESHttpDelete``:
  nothing qldb-settle does is an HTTP DELETE), and the master role every ``es:ESHttp*``; the
  function roles' own policies allow the same four actions on this domain alone. The policy
  is set on the domain itself (its ``AccessPolicies`` property, rewritten by each grant), not
  through CDK's custom resource.
- **Fine-grained access control** (what each may do inside): an IAM master role (created here,
  assumable by the account's principals allowed to assume it, or given) is the only admin. A
  custom resource (``infra/security_roles``, a plain Lambda assuming the master role) puts one
  OpenSearch security role per kind of caller, mapped to its IAM role ARNs as backend roles:
  ``<domain>-ingest`` (ingest and export-ingest), ``<domain>-settler`` and ``<domain>-operator``
  (``qldb-settle status/blocks/resolve/redrive``). Each may create the buffer's indices and read
  and write documents under the index prefix (``RUNTIME_INDEX_ACTIONS``); none may delete, close
  or reconfigure an index, change mappings or settings, or touch the security configuration:
  only the master can.

Encryption at rest, node-to-node encryption, HTTPS only with the TLS 1.2 PFS policy. Placement:
a public endpoint, or an existing VPC's subnets with a security group that admits the clients'
security group on 443. Slow-search, slow-index and error logs go to CloudWatch Logs under a
resource policy this construct writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnResource, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from infra.lambdas import RETENTION, function_role

SECURITY_ROLES_CODE = Path(__file__).parent / "security_roles"
SECURITY_ROLES_RUNTIME = lambda_.Runtime.PYTHON_3_14

# What the functions and operators call (``buffer/opensearch.py``): composable index templates
# (a cluster-level action in the security plugin), bulk, multi-get and multi-search (their
# cluster-level parts), the scrolls delete_by_query runs internally.
RUNTIME_CLUSTER_ACTIONS = (
    "indices:admin/index_template/put",
    "indices:data/write/bulk",
    "indices:data/read/mget",
    "indices:data/read/msearch",
    "indices:data/read/scroll",
    "indices:data/read/scroll/clear",
)
# On the buffer's indices only (``<prefix>-*``): create them (idempotent, at start-up), check and
# refresh them, get/mget/(m)search/count, and the document writes of put, mark, resolve and purge:
# create/index, update, delete of single documents inside bulk requests, delete_by_query
# (superseded statements, purged replayed blocks). Never indices:admin/delete, close, mapping,
# settings or aliases.
RUNTIME_INDEX_ACTIONS = (
    "indices:admin/create",
    "indices:admin/get",
    "indices:admin/refresh*",
    "indices:data/read/get",
    "indices:data/read/mget*",
    "indices:data/read/search*",
    "indices:data/write/index",
    "indices:data/write/bulk*",
    "indices:data/write/update",
    "indices:data/write/delete",
    "indices:data/write/delete/byquery",
)
FUNCTION_HTTP_ACTIONS = ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut")
SECURITY_ROLE_KINDS = ("ingest", "settler", "operator")


class BufferDomain(Construct):
    """The buffer's domain; ``url`` is the ``QLDB_SETTLE_BUFFER`` value the functions read.

    ``vpc`` and ``subnets`` set: the domain is in those subnets (one per zone), its security
    group admits ``client_security_group`` (give it to the functions) on 443.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain_name: str,
        version: str,
        instance_type: str,
        data_nodes: int,
        availability_zones: int,
        volume_gb: int,
        master_nodes: int,
        master_instance_type: str,
        log_retention_days: int,
        index_prefix: str = "qldb-settle",
        master_role_arn: str = "",
        vpc: ec2.IVpc | None = None,
        subnets: Sequence[ec2.ISubnet] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self._principals: list[str] = []
        self._backend_roles: dict[str, list[str]] = {kind: [] for kind in SECURITY_ROLE_KINDS}
        self.domain_name = domain_name
        self.index_prefix = index_prefix
        self.vpc = vpc
        self._subnets = tuple(subnets)
        log_groups = {
            kind: logs.LogGroup(
                self,
                f"{kind}Logs",
                retention=RETENTION[log_retention_days],
                removal_policy=RemovalPolicy.RETAIN,
            )
            for kind in ("SlowSearch", "SlowIndex", "App")
        }
        log_policy = logs.CfnResourcePolicy(
            self,
            "LogsPolicy",
            policy_name=f"{domain_name}-opensearch-logs",
            policy_document=Stack.of(self).to_json_string(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "es.amazonaws.com"},
                            "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
                            "Resource": [g.log_group_arn for g in log_groups.values()],
                            "Condition": {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                        }
                    ],
                }
            ),
        )
        zone_awareness = (
            opensearch.ZoneAwarenessConfig(enabled=True, availability_zone_count=availability_zones)
            if availability_zones > 1
            else opensearch.ZoneAwarenessConfig(enabled=False)
        )

        # The fine-grained access control master: the only principal that may administer it.
        self.master_role: iam.IRole
        if master_role_arn:
            self.master_role = iam.Role.from_role_arn(
                self, "MasterRole", master_role_arn, mutable=False
            )
        else:
            self.master_role = iam.Role(
                self,
                "MasterRole",
                assumed_by=iam.AccountRootPrincipal(),
                description="qldb-settle buffer domain: fine-grained access control master user "
                "(security roles and mappings, index deletion); the domain's resource policy "
                "is its only permission",
            )

        self.security_group: ec2.SecurityGroup | None = None
        self.client_security_group: ec2.SecurityGroup | None = None
        vpc_options: dict[str, Any] = {}
        if vpc is not None:
            self.security_group = ec2.SecurityGroup(
                self,
                "DomainSecurityGroup",
                vpc=vpc,
                description="qldb-settle buffer domain: HTTPS from its clients only",
                allow_all_outbound=False,
            )
            self.client_security_group = ec2.SecurityGroup(
                self,
                "ClientSecurityGroup",
                vpc=vpc,
                description="qldb-settle functions that call the buffer domain (and AWS APIs)",
                allow_all_outbound=True,
            )
            self.security_group.add_ingress_rule(
                self.client_security_group, ec2.Port.tcp(443), "HTTPS from the buffer's clients"
            )
            vpc_options = {
                "vpc": vpc,
                "vpc_subnets": [ec2.SubnetSelection(subnets=list(subnets))],
                "security_groups": [self.security_group],
            }

        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=domain_name,
            version=opensearch.EngineVersion.open_search(version),
            capacity=opensearch.CapacityConfig(
                data_node_instance_type=instance_type,
                data_nodes=data_nodes,
                master_nodes=master_nodes or None,
                master_node_instance_type=master_instance_type if master_nodes else None,
                multi_az_with_standby_enabled=False,
            ),
            ebs=opensearch.EbsOptions(
                volume_size=volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3
            ),
            zone_awareness=zone_awareness,
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2_PFS,
            fine_grained_access_control=opensearch.AdvancedSecurityOptions(
                master_user_arn=self.master_role.role_arn
            ),
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                app_log_enabled=True,
                app_log_group=log_groups["App"],
            ),
            suppress_logs_resource_policy=True,
            removal_policy=RemovalPolicy.RETAIN,
            **vpc_options,
        )
        self.domain.node.add_dependency(log_policy)
        cfn = self.domain.node.default_child
        assert isinstance(cfn, opensearch.CfnDomain)
        self._cfn = cfn
        self.url = f"opensearch:https://{self.domain.domain_endpoint}"
        self._cfn.access_policies = self._access_policy()
        self._security_roles(log_retention_days)

    # --- access -------------------------------------------------------------------------------

    def _domain_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{self.domain_name}"

    def _access_policy(self) -> Any:
        paths = f"{self._domain_arn()}/*"
        statements: list[dict[str, Any]] = []
        if self._principals:
            statements.append(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": list(self._principals)},
                    "Action": list(FUNCTION_HTTP_ACTIONS),
                    "Resource": paths,
                }
            )
        statements.append(
            {
                "Sid": "FineGrainedAccessControlMaster",
                "Effect": "Allow",
                "Principal": {"AWS": self.master_role.role_arn},
                "Action": "es:ESHttp*",
                "Resource": paths,
            }
        )
        return {"Version": "2012-10-17", "Statement": statements}

    def allow_principal(self, role_arn: str, kind: str = "operator") -> None:
        """Name another role in the domain's resource policy (GET/HEAD/POST/PUT) and map it to
        the ``kind`` security role (an operator's role; from another account, its own identity
        policy must allow those actions on the domain as well)."""
        self._principals.append(role_arn)
        self._cfn.access_policies = self._access_policy()
        self._map(kind, role_arn)

    def grant_http(self, role: iam.IRole, kind: str = "ingest") -> None:
        """Let ``role`` call the domain's HTTP API (GET/HEAD/POST/PUT, no DELETE) and map it
        to the ``kind`` security role (ingest or settler)."""
        self._principals.append(role.role_arn)
        self._cfn.access_policies = self._access_policy()
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(FUNCTION_HTTP_ACTIONS),
                resources=[self.domain.domain_arn, f"{self.domain.domain_arn}/*"],
            )
        )
        self._map(kind, role.role_arn)

    # --- fine-grained access control -----------------------------------------------------------

    def security_roles(self) -> dict[str, dict[str, Any]]:
        """The OpenSearch security roles the custom resource puts, by name, each with the IAM
        role ARNs it is mapped to (``backend_roles``)."""
        pattern = f"{self.index_prefix}-*"
        return {
            f"{self.domain_name}-{kind}": {
                "cluster_permissions": list(RUNTIME_CLUSTER_ACTIONS),
                "index_permissions": [
                    {"index_patterns": [pattern], "allowed_actions": list(RUNTIME_INDEX_ACTIONS)}
                ],
                "backend_roles": list(self._backend_roles[kind]),
            }
            for kind in SECURITY_ROLE_KINDS
        }

    def _map(self, kind: str, role_arn: str) -> None:
        if kind not in self._backend_roles:
            raise ValueError(f"security role kind {kind!r} is not one of {SECURITY_ROLE_KINDS}")
        self._backend_roles[kind].append(role_arn)
        self._cfn_security.add_property_override("Roles", self.security_roles())

    def _security_roles(self, log_retention_days: int) -> None:
        log_group, role = function_role(
            self,
            description="qldb-settle buffer domain: puts the security roles as the master role",
            log_retention_days=log_retention_days,
            vpc=self.vpc,
            prefix="SecurityRoles",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[self.master_role.role_arn])
        )
        self.security_roles_role = role
        self.security_roles_function = lambda_.Function(
            self,
            "SecurityRolesFunction",
            description="qldb-settle: the buffer domain's fine-grained access control roles",
            runtime=SECURITY_ROLES_RUNTIME,
            handler="index.handler",
            code=lambda_.Code.from_asset(
                str(SECURITY_ROLES_CODE), exclude=["__pycache__", "*.pyc", "__init__.py"]
            ),
            role=role,
            log_group=log_group,
            memory_size=256,
            timeout=Duration.minutes(5),
            vpc=self.vpc,
            vpc_subnets=(
                ec2.SubnetSelection(subnets=list(self._subnets)) if self.vpc is not None else None
            ),
            security_groups=(
                [self.client_security_group] if self.client_security_group is not None else None
            ),
        )
        self.security_roles_resource = CustomResource(
            self,
            "SecurityRoles",
            service_token=self.security_roles_function.function_arn,
            resource_type="Custom::OpenSearchSecurityRoles",
            properties={
                "Endpoint": f"https://{self.domain.domain_endpoint}",
                "Region": Aws.REGION,
                "MasterRoleArn": self.master_role.role_arn,
                "Roles": self.security_roles(),
            },
        )
        self.security_roles_resource.node.add_dependency(self.domain)
        cfn = self.security_roles_resource.node.default_child
        assert isinstance(cfn, CfnResource)
        self._cfn_security = cfn
