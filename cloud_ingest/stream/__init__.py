"""The live stream: an outbox of alarm and work-order changes, served as Server-Sent Events."""
