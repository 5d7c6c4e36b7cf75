"""A one-command benchmark of the gateway against a direct mock upstream: see bench/README.md."""
