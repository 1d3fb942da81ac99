"""onionpost: a self-hosted mail system that lives only inside the Tor onion network."""
