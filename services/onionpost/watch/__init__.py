"""Watch our onion from outside: probe it, alert when it is down or back, heal publication."""
