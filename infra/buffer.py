"""Where a record waits in AWS: the OpenSearch Service domain holding the settling buffer.

Encryption at rest, node-to-node encryption, HTTPS only (TLS 1.2). Access is IAM only: the
domain's resource policy names exactly the roles given to ``grant_http`` (the two functions),
and each of those roles gets the ``es:ESHttp*`` actions on this domain alone. The resource policy
is set on the domain itself (its ``AccessPolicies`` property, rewritten by each grant), not
through CDK's custom resource, so no extra Lambda is deployed. Slow-search, slow-index and error
logs go to CloudWatch Logs under a resource policy this construct writes.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from infra.lambdas import RETENTION


class BufferDomain(Construct):
    """The buffer's domain; ``url`` is the ``QLDB_SETTLE_BUFFER`` value the functions read."""

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
    ) -> None:
        super().__init__(scope, construct_id)
        self._principals: list[str] = []
        self.domain_name = domain_name
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
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
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
        )
        self.domain.node.add_dependency(log_policy)
        cfn = self.domain.node.default_child
        assert isinstance(cfn, opensearch.CfnDomain)
        self._cfn = cfn
        self.url = f"opensearch:https://{self.domain.domain_endpoint}"

    def _access_policy(self) -> Any:
        arn = f"arn:{Aws.PARTITION}:es:{Aws.REGION}:{Aws.ACCOUNT_ID}:domain/{self.domain_name}/*"
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": list(self._principals)},
                    "Action": "es:ESHttp*",
                    "Resource": arn,
                }
            ],
        }

    def allow_principal(self, role_arn: str) -> None:
        """Name another role in the domain's resource policy (an operator's role of another
        stack or account, whose own identity policy must allow ``es:ESHttp*`` as well)."""
        self._principals.append(role_arn)
        self._cfn.access_policies = self._access_policy()

    def grant_http(self, role: iam.IRole) -> None:
        """Let ``role`` (and no one else not named here) call the domain's HTTP API."""
        self._principals.append(role.role_arn)
        self._cfn.access_policies = self._access_policy()
        self.domain.grant_read_write(role)
