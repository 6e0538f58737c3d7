"""What bounds a run, whatever it touches: the invocation's deadline (``runtime.deadline``), and
the errors about the run rather than the journal (``runtime.errors``: transient, lease, checkpoint,
configuration), and the nearest-rank distribution every report gives for delays and lags
(``runtime.distribution``).

Imports: the standard library and ``journal`` (``journal.errors``) only; never ``ledger`` (its
peer) nor an adapter, which all read the deadline: it sits below every one of them.
"""
