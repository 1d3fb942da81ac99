"""Start-up steps run in a forked child process that then exits: what a step imports (pydantic
for the settings, cryptography for ingest's certificate) stays out of a service at rest."""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


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
