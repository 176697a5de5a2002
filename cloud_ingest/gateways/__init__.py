"""Gateway identity: credentials, their rows, the broker's files, the `gateways` commands."""
