"""The command line and the composition root: settings, wiring of ports to adapters."""
