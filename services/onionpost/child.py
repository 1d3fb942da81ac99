"""Child processes: start-up steps run in a forked child that then exits (what a step imports,
pydantic for the settings, cryptography for ingest's certificate, stays out of a service at
rest), and a child's tie to its parent's life."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")
PR_SET_PDEATHSIG = 1


class ChildError(RuntimeError):
    """The child sent nothing back (its traceback is on stderr)."""


def run_in_child(step: Callable[[], Result]) -> Result:
    """step()'s result, computed in a child; an exception it raises is raised here."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the step, send (ok, result or exception), exit
        try:
            os.close(reader)
            outcome: tuple[bool, object]
            try:
                outcome = (True, step())
            except Exception as error:
                outcome = (False, error)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(pickle.dumps(outcome))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        sent = pipe.read()
    os.waitpid(pid, 0)
    if not sent:
        raise ChildError(f"{getattr(step, '__name__', step)} failed in its child process")
    ok, value = pickle.loads(sent)  # from our own child
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]  # pickle is untyped: step's own result


def die_with_parent(signal_number: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Linux: get `signal_number` when the parent dies, even by SIGKILL (an orphan would keep
    ports, queues, the Maildir or a message's tmp/ file busy). Exits at once when the
    parent (`parent`: the pid it must be) is gone already."""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal_number)
    if os.getppid() != parent:
        os._exit(0)
