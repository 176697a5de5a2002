"""Dispatch: teams, technicians, rosters, automatic assignment and the shared pool."""
