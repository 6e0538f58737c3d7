"""What bounds a run, whatever it touches: the invocation's deadline (``runtime.deadline``).

Below every adapter (buffer, destination) and above nothing: it imports only the standard
library and ``journal.errors``.
"""
