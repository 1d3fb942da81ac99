"""The ntfy client: JSON publishing over one httpx connection pool per process."""

from __future__ import annotations

import re

import httpx

from onionpost.events import Notice

CONNECT_TIMEOUT = 5.0
TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")  # what ntfy accepts as a topic name
HINTS = {
    400: "check ONIONPOST_NTFY_TOPIC (letters, digits, - and _, at most 64)",
    401: "check ONIONPOST_NTFY_TOKEN or ONIONPOST_NTFY_USER/ONIONPOST_NTFY_PASSWORD",
    403: "the ntfy user or token may not write to ONIONPOST_NTFY_TOPIC",
    404: "check ONIONPOST_NTFY_URL (the ntfy base URL, without the topic)",
    413: "ntfy refused the size of the notice",
}


class NtfyUnavailableError(Exception):
    """Try again later: ntfy unreachable, too slow, overloaded (5xx) or rate limiting (429)."""


class NtfyRejectedError(Exception):
    """ntfy refused the notice for good (4xx): retrying the same request cannot help."""

    def __init__(self, status: int, error: str) -> None:
        hint = HINTS.get(status, "see the ntfy server's log")
        super().__init__(f"ntfy refused the notice: HTTP {status} {error}; {hint}")
        self.status = status


class Ntfy:
    """Posts notices to `url` (the ntfy base URL) on `topic`. The JSON body carries every
    field, so no text of ours (or of a mail) ever becomes an HTTP header."""

    def __init__(self, url: str, topic: str, *, token: str = "", user: str = "",
                 password: str = "", timeout: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(user, password) if user and not token else None
        self.topic = topic
        self._client = httpx.Client(
            base_url=url, headers=headers, auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
            follow_redirects=False, trust_env=False)

    def publish(self, notice: Notice) -> str:
        """Post one notice; return ntfy's message id."""
        body = {"topic": self.topic, "title": notice.title, "message": notice.message,
                "priority": notice.priority, "tags": notice.tags}
        try:
            response = self._client.post("/", json=body)
        except httpx.TransportError as error:
            raise NtfyUnavailableError(type(error).__name__) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise NtfyUnavailableError(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise NtfyRejectedError(response.status_code, _error_text(response))
        try:
            return str(response.json().get("id", ""))
        except ValueError:
            return ""

    def close(self) -> None:
        self._client.close()


def _error_text(response: httpx.Response) -> str:
    """ntfy answers {"code": 40101, "http": 401, "error": "unauthorized"}."""
    try:
        return str(response.json().get("error", "")) or response.reason_phrase
    except ValueError:
        return response.reason_phrase
