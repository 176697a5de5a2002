"""Infrastructure of the cloud ingest: database engine, sessions and the table schema."""
