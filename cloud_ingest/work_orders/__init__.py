"""Work orders: the closed loop from alarm or request to a verified, rated repair."""
