"""Notify the owner through a self-hosted ntfy server."""
