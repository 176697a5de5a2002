"""Photos by content hash: upload, storage, access (`cloud_ingest.photos.router`)."""
