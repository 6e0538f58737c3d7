"""Where it runs in AWS: the CDK app (ledgers, stream, ingest, buffer, settler, monitoring).

One module per construct (``ledgers``, ``stream``, ``ingest``, ``buffer``, ``settler``,
``export``, ``postgres``, ``monitoring``; ``lambdas``: what the functions share);
``infra.stacks`` composes them into the three stacks and wires the grants; ``infra.app`` is the
app (``python -m infra.app``), ``infra.nag`` its cdk-nag acknowledgements. Every setting is a CDK
context key documented in ``infra.context`` (and, generated from it, in ``cdk.json``), parsed and
checked by ``infra.config``. The functions' code is the project's packages copied
(``infra.packaging``), their dependencies layers built from the locks in ``infra/layers/``
(``infra.build_layers``); ``infra.security_roles`` is the custom resource (a Lambda asset) that
puts the buffer domain's fine-grained access control roles.

Imports: ``handlers`` (``handlers.metrics``, the metric names; the handlers themselves are named
by import path only, never imported), ``settler`` (``settler.ingest_health``: the names of the
environment variables it sets for the settler) and ``runtime`` (``runtime.errors``), with the CDK
libraries; never ``bench`` (its peer). Nothing in the service imports it
(``tests/test_layers.py``).
"""
