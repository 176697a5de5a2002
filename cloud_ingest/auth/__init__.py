"""API users: roles, bearer tokens, the permission dependency and row scoping."""
