"""sendmail(8) command lines: what neomutt, mutt and git send-email pass, parsed the way
sendmail's getopt does (bundled flags, attached or separate values, `--`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# Sendmail flags that take a value (`-fADDR` or `-f ADDR`). Only f/r/F/b/o matter to us;
# the others (DSN, queue ids, config files, hop counts, debug) are accepted and ignored.
_WITH_VALUE = frozenset("BCFLNORVXbdfhopr")
LONG_FLAGS = {"--partial": "partial", "--keep-headers": "keep_headers", "--queue": "queue",
              "--help": "help"}


class UsageError(ValueError):
    """A command line sendmail would refuse (exit 64)."""


@dataclass
class Invocation:
    recipients: list[str] = field(default_factory=list)
    from_headers: bool = False          # -t: recipients also from To/Cc/Bcc
    sender: str | None = None           # -f / -r: envelope sender
    full_name: str | None = None        # -F: for a From header we add
    dots_end_message: bool = True       # a lone "." line ends input, unless -i / -oi
    verbose: bool = False               # -v: one line per delivered recipient too
    partial: bool = False               # --partial: send to the valid recipients anyway
    keep_headers: bool = False          # --keep-headers: keep User-Agent / X-Mailer
    queue: bool = False                 # --queue: a destination that is down goes to the outbox
    help: bool = False


def parse(argv: list[str]) -> Invocation:
    result = Invocation()
    args = iter(argv)
    for arg in args:
        if arg == "--":
            result.recipients.extend(args)
        elif arg.startswith("--"):
            if arg in LONG_FLAGS:
                setattr(result, LONG_FLAGS[arg], True)
        elif arg.startswith("-") and len(arg) > 1:
            _short_flags(arg[1:], args, result)
        else:
            result.recipients.append(arg)
    return result


def _short_flags(flags: str, args: Iterator[str], result: Invocation) -> None:
    for index, flag in enumerate(flags):
        if flag not in _WITH_VALUE:
            _switch(flag, result)
            continue
        value = flags[index + 1:] or next(args, None)
        if value is None:
            raise UsageError(f"option -{flag} requires a value")
        _option(flag, value, result)
        return


def _switch(flag: str, result: Invocation) -> None:
    if flag == "t":
        result.from_headers = True
    elif flag == "i":
        result.dots_end_message = False
    elif flag == "v":
        result.verbose = True
    elif flag == "q":
        raise UsageError("-q is not supported: `onionpost send-queue` delivers the outbox")


def _option(flag: str, value: str, result: Invocation) -> None:
    if flag in "fr":
        result.sender = value
    elif flag == "F":
        result.full_name = value
    elif flag == "o" and value == "i":
        result.dots_end_message = False
    elif flag == "b" and value != "m":
        raise UsageError(f"-b{value} is not supported: onionpost only delivers messages (-bm)")
