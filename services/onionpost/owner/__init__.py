"""The owner onion: who may reach fetch, ntfy and the dashboard (`onionpost owner`)."""
