"""The registry as the API serves it: gateways, devices and dead letters."""
