"""Contract suites: one per port, parametrised over every adapter."""
