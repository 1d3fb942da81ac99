"""`onionpost fetch DEST`: move mail from the server into a local Maildir over ssh, loss-free.

Order of events for every message: the server sends it with its sha256; we write it to
tmp/, fsync, verify size and hash, rename into new/ (or cur/), fsync the directory, note
it in the fetch record, and only then ask the server to delete it. A run killed anywhere
leaves either a message the server still has (fetched or confirmed next time) or a
message we have and the server still has (recognised by its unique name: only the delete
is redone). Nothing is ever fetched twice.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from onionpost.fetch import protocol
from onionpost.fetch.inbox import (
    BusyError,
    Delivery,
    FetchRecord,
    Fingerprint,
    LocalMaildir,
    MismatchError,
    sha256_file,
    unique_names,
)
from onionpost.fetch.plan import Plan, Request, batches, make_plan, requests
from onionpost.fetch.progress import Outcome, ProgressBar, summary
from onionpost.fetch.protocol import Entry, ProtocolError
from onionpost.fetch.ssh import SshCall, authorized_key_line, parse_resolved, serve_command
from onionpost.settings import Settings

EX_OK, EX_USAGE, EX_UNAVAILABLE, EX_IOERR = 0, 64, 69, 74
EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 75, 76, 77
BATCH_COUNT, BATCH_BYTES = 64, 8_000_000
CHUNK = 1 << 16


class FetchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectionLostError(Exception):
    """The stream ended early: ssh, the network or the server went away."""


class ServerError(Exception):
    """The server answered ERR."""


class Session:
    """The client end of the protocol over a pair of pipes."""

    def __init__(self, replies: BinaryIO, requests_out: BinaryIO) -> None:
        self._in = replies
        self._out = requests_out
        self.greeted = False

    def greet(self) -> None:
        line = self._in.readline(protocol.MAX_LINE)
        if not line:
            raise ConnectionLostError("no answer from the server")
        if line != protocol.GREETING:
            self._check_error(protocol.decode(line))
            raise ProtocolError(f"not an onionpost fetch server (it said {line[:60]!r})")
        self.greeted = True

    def words(self) -> list[str]:
        line = self._in.readline(protocol.MAX_LINE)
        if not line:
            raise ConnectionLostError("connection closed by the server")
        words = protocol.decode(line)
        self._check_error(words)
        return words

    def send(self, lines: list[bytes]) -> None:
        try:
            self._out.write(b"".join(lines))
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError):
            raise ConnectionLostError("connection closed while sending") from None

    def listing(self) -> tuple[list[Entry], int]:
        self.send([protocol.request("LIST")])
        entries: list[Entry] = []
        while True:
            item = protocol.parse_list_line(self.words())
            if isinstance(item, Entry):
                entries.append(item)
                continue
            count, skipped = item
            if count != len(entries):
                raise ProtocolError(f"the server listed {len(entries)} messages, said {count}")
            return entries, skipped

    def body_into(self, sink: object, size: int) -> str:
        """Copy size bytes into sink.write; return the digest line that follows."""
        left = size
        while left:
            chunk = self._in.read(min(CHUNK, left))
            if not chunk:
                raise ConnectionLostError("connection closed in the middle of a message")
            sink.write(chunk)  # type: ignore[attr-defined]
            left -= len(chunk)
        words = self.words()
        if len(words) != 1:
            raise ProtocolError(f"expected a sha256 after the message, got {words[0][:40]!r}")
        return protocol.check_digest(words[0])

    def quit(self) -> None:
        self.send([protocol.request("QUIT")])
        if self.words() != ["BYE"]:
            raise ProtocolError("expected BYE")

    @staticmethod
    def _check_error(words: list[str]) -> None:
        error = protocol.server_error(words)
        if error is not None:
            raise ServerError(error)


@dataclass
class Options:
    keep: bool = False
    dry_run: bool = False
    limit: int | None = None


class Fetcher:
    """One run: plan from the server's list, then pipelined batches of requests."""

    def __init__(self, session: Session, inbox: LocalMaildir, options: Options,
                 progress_stream: object = None) -> None:
        self.session = session
        self.inbox = inbox
        self.record = FetchRecord(inbox.root)
        self.options = options
        self.outcome = Outcome(kept=options.keep)
        self._progress_stream = progress_stream
        self._known: dict[str, Fingerprint] = {}
        self._present: dict[str, Path] = {}
        self._fetched_now: set[str] = set()

    def run(self) -> Outcome:
        self.session.greet()
        entries, _skipped = self.session.listing()
        if self.inbox.exists():
            self._known = self.record.load()
            self._present = self.inbox.present()
        plan = make_plan(entries, self._known.keys() | self._present.keys(),
                         keep=self.options.keep, limit=self.options.limit)
        self.outcome.held_back = plan.held_back
        if self.options.dry_run:
            self._dry_outcome(plan)
        else:
            self._transfer(plan)
            deleted = {entry.unique for entry in plan.confirm + plan.fetch}
            self.record.prune(unique_names(entries) - (set() if self.options.keep
                                                      else deleted))
        self.session.quit()
        return self.outcome

    def _dry_outcome(self, plan: Plan) -> None:
        self.outcome.fetched, self.outcome.fetched_bytes = len(plan.fetch), plan.fetch_bytes
        self.outcome.removed = len(plan.confirm)

    def _transfer(self, plan: Plan) -> None:
        """Two batches in flight: while we fsync batch k the server already streams batch
        k+1 and unlinks batch k-1. Requests and replies stay in order on the stream:
        R0 R1 D0 R2 D1 R3 ... (Rk: the GET/SUMs of batch k, Dk: its DELs)."""
        progress = ProgressBar(self._progress_stream or sys.stdout, len(plan.fetch),
                               plan.fetch_bytes)  # type: ignore[arg-type]
        work = batches(requests(plan), BATCH_COUNT, BATCH_BYTES)
        in_flight: list[Entry] = []  # DELs sent, replies not read yet
        try:
            self.session.send(self._asks(work[:2]))
            for index, batch in enumerate(work):
                safe = self._receive(batch, progress)
                self._read_deleted(in_flight)
                in_flight = [] if self.options.keep else safe
                self.session.send(self._deletes(in_flight) + self._asks(work[index + 2:][:1]))
            self._read_deleted(in_flight)
        finally:
            progress.close()

    @staticmethod
    def _asks(some: list[list[Request]]) -> list[bytes]:
        return [protocol.request(verb, entry.name) for batch in some for verb, entry in batch]

    @staticmethod
    def _deletes(entries: list[Entry]) -> list[bytes]:
        return [protocol.request("DEL", entry.name, entry.size) for entry in entries]

    def _read_deleted(self, entries: list[Entry]) -> None:
        for entry in entries:
            if protocol.parse_deleted(self.session.words(), entry.name):
                self.outcome.removed += entry.unique not in self._fetched_now
            else:
                self.outcome.gone += 1

    def _receive(self, batch: list[Request], progress: ProgressBar) -> list[Entry]:
        """Answers to one batch, made durable; returns what the server may now delete."""
        safe: list[Entry] = []
        deliveries: list[Delivery] = []
        fetched: dict[str, Fingerprint] = {}
        try:
            for verb, entry in batch:
                if verb == "GET":
                    delivery = self._fetch_one(entry)
                    if delivery is None:
                        continue
                    deliveries.append(delivery)
                    fetched[entry.unique] = Fingerprint(entry.size, delivery.digest)
                    progress.advance(entry.size)
                elif not self._confirm_one(entry):
                    continue
                safe.append(entry)
        except BaseException:
            for delivery in deliveries:
                delivery.abort()
            raise
        self.inbox.commit(deliveries)
        self.record.append(fetched)
        self._fetched_now.update(fetched)
        self.outcome.fetched += len(deliveries)
        self.outcome.fetched_bytes += sum(d.entry.size for d in deliveries)
        return safe

    def _fetch_one(self, entry: Entry) -> Delivery | None:
        """Receive one message into tmp/ and verify it (not yet durable)."""
        size = protocol.parse_data_header(self.session.words(), entry)
        if size is None:
            self.outcome.gone += 1
            return None
        delivery = self.inbox.start(entry)
        try:
            delivery.verify(self.session.body_into(delivery, size))
        except BaseException:
            delivery.abort()
            raise
        return delivery

    def _confirm_one(self, entry: Entry) -> bool:
        """The server still has a message we have: true if its copy is the same as ours."""
        theirs = protocol.parse_sum(self.session.words(), entry)
        if theirs is None:
            self.outcome.gone += 1
            return False
        ours = self._known.get(entry.unique) or sha256_file(self._present[entry.unique])
        if Fingerprint(*theirs) != ours:
            raise MismatchError(f"the server's {entry.name} differs from ours: not deleted")
        return True


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
        print(f"onionpost fetch: {key_file}: {error}", file=sys.stderr)
        return EX_USAGE
    return EX_OK


def _tor_connect_command() -> str:
    return f"{shlex.quote(sys.executable)} -m onionpost tor-connect"


def _resolve(call: SshCall) -> dict[str, str]:
    result = subprocess.run(call.resolve_argv(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(EX_USAGE, f"ssh: {_last_line(result.stderr) or 'bad destination'}")
    return parse_resolved(result.stdout)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _unreachable(call: SshCall, returncode: int, ssh_stderr: str) -> FetchError:
    # tor's reason (from our ProxyCommand) says more than ssh's "connection closed"
    said = _last_line("\n".join(line for line in ssh_stderr.splitlines()
                                if line.startswith("tor-connect:"))) or _last_line(ssh_stderr)
    if returncode == 255:
        if "Permission denied" in said or "Host key verification failed" in said:
            return FetchError(EX_NOPERM, f"ssh to {call.destination}: {said}")
        return FetchError(EX_TEMPFAIL, f"cannot reach {call.destination}: {said or 'ssh failed'}")
    return FetchError(EX_UNAVAILABLE, f"the server side did not start (exit {returncode})"
                      + (f": {said}" if said else ""))


def fetch(call: SshCall, remote_command: str, inbox: LocalMaildir,
          options: Options) -> Outcome:
    """Run ssh, speak the protocol over its pipes, map every failure to a FetchError."""
    argv = call.argv(remote_command, _resolve(call), _tor_connect_command())
    with tempfile.TemporaryFile() as ssh_stderr:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=ssh_stderr)
        assert process.stdin is not None and process.stdout is not None
        fetcher = Fetcher(Session(process.stdout, process.stdin), inbox, options)
        try:
            return fetcher.run()
        except ConnectionLostError as error:
            process.stdin.close()
            returncode = process.wait()
            ssh_stderr.seek(0)
            said = ssh_stderr.read().decode(errors="replace")
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
        print("onionpost fetch: a destination is needed (e.g. owner@server)", file=sys.stderr)
        return EX_USAGE
    if args.limit is not None and args.limit < 0:
        print("onionpost fetch: --limit must be 0 or more", file=sys.stderr)
        return EX_USAGE
    call = SshCall(args.destination, args.ssh_option, args.identity, shlex.split(args.ssh))
    remote = serve_command(args.remote_onionpost, args.remote_maildir)
    options = Options(args.keep, args.dry_run, args.limit)
    inbox = LocalMaildir(args.to.expanduser())
    try:
        if not args.dry_run:
            inbox.create()
            inbox.lock()
            inbox.remove_leftovers()
        outcome = fetch(call, remote, inbox, options)
    except FetchError as error:
        print(f"onionpost fetch: {error}", file=sys.stderr)
        return error.code
    except BusyError as error:
        print(f"onionpost fetch: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    except OSError as error:
        print(f"onionpost fetch: local Maildir: {error}", file=sys.stderr)
        return EX_IOERR
    finally:
        inbox.unlock()
    print(summary(outcome, dry_run=args.dry_run))
    return EX_OK
