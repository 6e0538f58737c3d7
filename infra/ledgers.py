"""The blog's first stack: a source and a destination QLDB ledger (optional by context).

QLDB reached end of support on 2025-07-31: new ledgers can no longer be created, so the app
creates these only when ``deployLedgers`` is true; otherwise the settling service deploys against
ledgers that exist (``destinationLedgerName``). The blog's custom resource that created tables in
the source ledger is left out: the settler replays the source's CREATE TABLE statements.
"""

from __future__ import annotations

from aws_cdk import aws_qldb as qldb
from constructs import Construct

# cfn-lint's E3710 flags every AWS::QLDB::* resource (service shut down on 2025-07-31): these
# are opt-in for accounts that can still create them, so the check is silenced on them alone.
CFN_LINT_QLDB = {"config": {"ignore_checks": ["E3710"]}}


class Ledgers(Construct):
    """Two QLDB ledgers with deletion protection: ``source`` (streamed) and ``destination``
    (the replica the settler writes)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_name: str,
        destination_name: str,
        permissions_mode: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.source = qldb.CfnLedger(
            self,
            "Source",
            name=source_name,
            permissions_mode=permissions_mode,
            deletion_protection=True,
        )
        self.destination = qldb.CfnLedger(
            self,
            "Destination",
            name=destination_name,
            permissions_mode=permissions_mode,
            deletion_protection=True,
        )
        for ledger in (self.source, self.destination):
            ledger.add_metadata("cfn-lint", CFN_LINT_QLDB)
        self.source_name = source_name
        self.destination_name = destination_name
