"""Move mail from the server's Maildir to the owner's machine over SSH, loss-free."""
