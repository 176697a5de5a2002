"""The cloud side of Steward. So far: validation of uplink envelopes (`cloud-ingest validate`)."""
