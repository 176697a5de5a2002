"""A device's telemetry as the API serves it: series downsampled into time buckets for charts."""
