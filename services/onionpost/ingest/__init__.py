"""Receive mail: the aiosmtpd ingest service."""
