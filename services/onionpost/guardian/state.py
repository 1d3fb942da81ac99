"""The guardian's state in Redis: the pause record, the flood episode, new-mail windows.

Every transition is one Redis transaction (WATCH/MULTI/EXEC) that also enqueues its notice,
so that several guardians racing on the same change make it once and announce it once.
"""

from __future__ import annotations

import time

import redis
from redis.client import Pipeline

from onionpost.events import PAUSED_KEY
from onionpost.guardian.policy import OWNER, Pause

FLOOD_KEY = "onionpost:guardian:flood"  # string: the open flood episode; expires when calm
NEW_MAIL_COUNT = "onionpost:newmail:count"  # messages stored since the last new-mail notice
NEW_MAIL_FILES = "onionpost:newmail:files"  # list: names of the newest of them (summary)
NEW_MAIL_WINDOW = "onionpost:newmail:window"  # string: a digest is scheduled for this burst


def read_pause(client: redis.Redis | Pipeline) -> Pause | None:
    return _pause_of(client.hgetall(PAUSED_KEY))


def write_pause(pipe: redis.Redis | Pipeline, pause: Pause) -> None:
    pipe.delete(PAUSED_KEY)
    pipe.hset(PAUSED_KEY, mapping=pause.to_fields())


def pause_by_owner(client: redis.Redis, reason: str = "by hand") -> Pause:
    """`onionpost pause`: replaces any pause, so the guardian will not lift it."""
    pause = Pause(reason, OWNER, time.time())
    with client.pipeline(transaction=True) as pipe:
        write_pause(pipe, pause)
        pipe.execute()
    return pause


def resume(client: redis.Redis) -> Pause | None:
    """`onionpost resume`: lift any pause; returns the pause it lifted."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(PAUSED_KEY)
        pipe.delete(PAUSED_KEY)
        fields, _ = pipe.execute()
    return _pause_of(fields)


def _pause_of(fields: dict[bytes | str, bytes | str]) -> Pause | None:
    return Pause.from_fields({text(k): text(v) for k, v in fields.items()})


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
