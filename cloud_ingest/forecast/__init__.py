"""Device forecasts: a bin's time to full and a battery's days left (`cloud_ingest.forecast.model`)."""
