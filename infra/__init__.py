"""Where it runs in AWS: the CDK app (ledgers, stream, ingest, buffer, settler, monitoring).

One module per construct; ``infra.stacks`` composes them into the three stacks and wires the
grants; ``infra.app`` is the app (``python -m infra.app``). Every setting is a CDK context key
documented in ``infra.context`` (and, generated from it, in ``cdk.json``), parsed and checked by
``infra.config``.

Imports: ``handlers`` (``handlers.metrics``, the metric names; the handlers themselves are named
by import path only, never imported), ``settler`` (``settler.ingest_health``: the names of the
environment variables it sets for the settler) and ``runtime`` (``runtime.errors``), with the CDK
libraries; never ``bench`` (its peer). Nothing in the service imports it
(``tests/test_layers.py``).
"""
