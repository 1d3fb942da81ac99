"""`onionpost fetch DEST`: move mail from the server into a local Maildir over ssh, loss-free.

This module runs the system's ssh with `onionpost fetch-serve` on the other end, hands its
pipes to transfer.Fetcher, and turns every failure into one line and a sysexits code.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from onionpost.exits import (
    EX_CANTCREAT,
    EX_IOERR,
    EX_NOPERM,
    EX_OK,
    EX_PROTOCOL,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    CommandError,
)
from onionpost.fetch.inbox import BusyError, LocalMaildir, MismatchError
from onionpost.fetch.progress import Outcome, clash_warning, printable_lines, summary
from onionpost.fetch.protocol import ProtocolError
from onionpost.fetch.session import ConnectionLostError, ServerError, Session
from onionpost.fetch.ssh import SshCall, authorized_key_line, parse_resolved, serve_command
from onionpost.fetch.transfer import Fetcher, Options
from onionpost.settings import Settings

TOR_CONNECT = "onionpost tor-connect: "  # how our ProxyCommand's lines on ssh's stderr start


class FetchError(CommandError):
    """A failed fetch; its message may quote the server or ssh (see `_failure`)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onionpost fetch",
        description="Move mail from the server into a local Maildir over ssh. A message is "
                    "deleted on the server only once it is safely on this disk.")
    parser.add_argument("destination", nargs="?",
                        help="ssh destination: user@host, an alias from ~/.ssh/config, "
                             "user@<x>.onion")
    parser.add_argument("--to", type=Path, default=Path("~/mail/inbox"),
                        help="local Maildir (default: ~/mail/inbox; created when missing)")
    parser.add_argument("-o", "--ssh-option", action="append", default=[], metavar="OPTION",
                        help="passed to ssh as -o OPTION (repeatable)")
    parser.add_argument("-i", "--identity", help="ssh private key file (ssh -i)")
    parser.add_argument("--ssh", default="ssh", metavar="COMMAND",
                        help="the ssh command, may have arguments (default: ssh)")
    parser.add_argument("--remote-maildir", metavar="PATH",
                        help="the server's Maildir, for a plain install without a forced "
                             "command (the forced command decides otherwise)")
    parser.add_argument("--remote-onionpost", default="onionpost", metavar="CMD",
                        help="how to run onionpost on the server (default: onionpost)")
    parser.add_argument("--compose-file", metavar="PATH",
                        help="with --print-authorized-key: the server's compose.yaml; the "
                             "key then serves the mail volume of the compose stack")
    parser.add_argument("--keep", action="store_true",
                        help="leave mail on the server (it is still never fetched twice)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    parser.add_argument("--limit", type=int, metavar="N", help="fetch at most N messages")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="give up when the server says nothing for this long "
                             "(default: 300)")
    parser.add_argument("--print-authorized-key", action="store_true",
                        help="print the server's authorized_keys line for the fetch key "
                             "(the public key of -i, default ~/.ssh/id_ed25519.pub)")
    return parser


def _print_authorized_key(args: argparse.Namespace) -> int:
    key_file = Path(args.identity + ".pub" if args.identity else "~/.ssh/id_ed25519.pub")
    try:
        public_key = key_file.expanduser().read_text().strip()
        command = serve_command(args.remote_onionpost, args.remote_maildir, args.compose_file)
        print(authorized_key_line(command, public_key))
    except (OSError, ValueError) as error:
        raise _failure(EX_USAGE, f"{key_file}: {error}") from None
    return EX_OK


def _tor_connect_command() -> str:
    return f"{shlex.quote(sys.executable)} -m onionpost tor-connect"


def _resolve(call: SshCall) -> dict[str, str]:
    result = subprocess.run(call.resolve_argv(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(EX_USAGE, f"ssh: {_last_line(result.stderr) or 'bad destination'}")
    return parse_resolved(result.stdout)


def _last_line(text: str) -> str:
    lines = printable_lines(text)
    return lines[-1] if lines else ""


def _failure(code: int, text: str) -> CommandError:
    """The command's error: one line; server and ssh text in it can steer no terminal."""
    return CommandError(code, " ".join(printable_lines(text)))


def _unreachable(call: SshCall, returncode: int, ssh_stderr: str) -> FetchError:
    # tor's reason (from our ProxyCommand) says more than ssh's "connection closed"
    said = _last_line("\n".join(line.removeprefix("onionpost ")
                                for line in ssh_stderr.splitlines()
                                if line.startswith(TOR_CONNECT))) or _last_line(ssh_stderr)
    if returncode == 255:
        if "Permission denied" in said or "Host key verification failed" in said:
            return FetchError(EX_NOPERM, f"ssh to {call.destination}: {said}")
        return FetchError(EX_TEMPFAIL, f"cannot reach {call.destination}: {said or 'ssh failed'}")
    return FetchError(EX_UNAVAILABLE, f"the server side did not start (exit {returncode})"
                      + (f": {said}" if said else ""))


class Watchdog:
    """Kills ssh once the server has said nothing for `timeout` seconds: a stalled server,
    or a network that drops packets silently, must not hang a cron job for ever."""

    def __init__(self, session: Session, process: subprocess.Popen[bytes],
                 timeout: float) -> None:
        self.session, self.process, self.timeout = session, process, timeout
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout / 4)):
            if time.monotonic() - self.session.last_heard > self.timeout:
                self.fired = True
                self.process.kill()
                return


def fetch(call: SshCall, remote_command: str, inbox: LocalMaildir, options: Options,
          timeout: float = 300.0) -> Outcome:
    """Run ssh, speak the protocol over its pipes, map every failure to a FetchError."""
    argv = call.argv(remote_command, _resolve(call), _tor_connect_command())
    with tempfile.TemporaryFile() as ssh_stderr:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=ssh_stderr)
        assert process.stdin is not None and process.stdout is not None
        fetcher = Fetcher(Session(process.stdout, process.stdin), inbox, options)
        watchdog = Watchdog(fetcher.session, process, timeout)
        try:
            with watchdog:
                return fetcher.run()
        except ConnectionLostError as error:
            process.stdin.close()
            returncode = process.wait()
            ssh_stderr.seek(0)
            said = ssh_stderr.read().decode(errors="replace")
            if watchdog.fired:
                raise FetchError(EX_TEMPFAIL, f"no answer from the server for {timeout:g} s,"
                                 f" gave up after {fetcher.outcome.fetched} messages") from None
            if not fetcher.session.greeted:
                raise _unreachable(call, returncode, said) from None
            raise FetchError(EX_TEMPFAIL, f"{error} after {fetcher.outcome.fetched} messages"
                             f" (run again to finish) {_last_line(said)}".rstrip()) from None
        except ServerError as error:
            raise FetchError(EX_UNAVAILABLE, f"the server says: {error}") from None
        except (ProtocolError, MismatchError) as error:
            raise FetchError(EX_PROTOCOL, f"protocol error, stopped: {error}") from None
        finally:
            if process.poll() is None:
                process.stdin.close()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def main(argv: list[str], settings: Settings) -> int:
    args = _parser().parse_args(argv)
    if args.print_authorized_key:
        return _print_authorized_key(args)
    if not args.destination:
        raise _failure(EX_USAGE, "a destination is needed (e.g. owner@server)")
    if (args.limit is not None and args.limit < 0) or args.timeout <= 0:
        raise _failure(EX_USAGE, "--limit must be 0 or more, --timeout above 0")
    call = SshCall(args.destination, args.ssh_option, args.identity, shlex.split(args.ssh))
    remote = serve_command(args.remote_onionpost, args.remote_maildir)
    options = Options(args.keep, args.dry_run, args.limit)
    inbox = LocalMaildir(args.to.expanduser())
    try:
        if not args.dry_run:
            inbox.create()
            inbox.lock()
            inbox.remove_leftovers()
        outcome = fetch(call, remote, inbox, options, args.timeout)
    except FetchError as error:
        raise _failure(error.code, error.message) from None
    except BusyError as error:
        raise _failure(EX_TEMPFAIL, str(error)) from None
    except OSError as error:
        raise _failure(EX_IOERR, f"local Maildir: {error}") from None
    except KeyboardInterrupt:
        # a line of its own, after the terminal's "^C"
        print("\nonionpost fetch: interrupted (nothing lost: run again to finish)",
              file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        inbox.close()
    print(summary(outcome, dry_run=args.dry_run))
    if outcome.clashes:
        raise _failure(EX_CANTCREAT, clash_warning(outcome.clashes))
    return EX_OK
