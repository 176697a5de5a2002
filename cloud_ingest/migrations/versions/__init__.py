"""Alembic revisions, oldest first (`rev_<number>_<what>.py`)."""
