"""Guard the mailbox: recount, pause past a limit, resume when drained, warn of floods."""
