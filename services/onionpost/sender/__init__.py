"""Send mail straight to the recipient's onion server over Tor."""
