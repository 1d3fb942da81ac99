"""The mailbox quota, one type for all who apply it: ingest refuses a message past it (452),
the guardian pauses at it and resumes under its marks, the notices quote it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onionpost.maildir import Usage
    from onionpost.settings import Settings


@dataclass(frozen=True)
class Quota:
    max_messages: int
    max_bytes: int
    resume_percent: int = 0  # the guardian's resume marks, in % of the limits; 0: by hand

    @classmethod
    def of(cls, settings: Settings) -> Quota:
        return cls(settings.max_messages, settings.max_bytes, settings.resume_percent)

    @property
    def resume_messages(self) -> int:
        return self.max_messages * self.resume_percent // 100

    @property
    def resume_bytes(self) -> int:
        return self.max_bytes * self.resume_percent // 100

    def allows(self, messages: int, size: int) -> bool:
        """Whether a mailbox of this many messages and bytes is within the quota."""
        return messages <= self.max_messages and size <= self.max_bytes

    def reached(self, usage: Usage) -> str | None:
        """'messages' or 'bytes' when the mailbox is full on that count."""
        if usage.messages >= self.max_messages:
            return "messages"
        if usage.bytes >= self.max_bytes:
            return "bytes"
        return None
