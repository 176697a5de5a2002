"""Working-hours calendars shipped with the cloud (YAML files, one per region and year)."""
