"""Start-up of `onionpost-sendmail`, which neomutt waits for on every send, against the bare
interpreter in the same run.

Rows, run in turn BENCH_RUNS times each (default 30, interleaved so that the machine's load
falls on all alike), as fresh processes: `python3 -S -c pass` and `python3 -c pass` (the
anchors: the same interpreter as onionpost, without and with site); `onionpost-sendmail
--help`; `onionpost-sendmail` sending one message while tor is not running (everything
but the network: settings, the message read and cleaned, routing, the SOCKS connect
refused, exit 75); for comparison, the pydantic Settings every other command loads; and
with BENCH_BASELINE=<git revision>, that same send by that revision's sendmail. Prints p50
and min wall time and the ratio of p50 to each anchor's p50."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.net import free_port

from bench.baseline import export
from onionpost import onion

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
SENDMAIL = str(Path(sys.executable).parent / "onionpost-sendmail")
GOAL_SECONDS = 0.15


def new_onion() -> str:
    return onion.from_public_key(Ed25519PrivateKey.generate().public_key().public_bytes_raw())


def rows(baseline: Path | None) -> dict[str, tuple[list[str], bytes]]:
    ours, bob = new_onion(), new_onion()
    message = f"From: me@{ours}\nTo: bob@{bob}\nSubject: hi\n\nbody\n".encode()
    old = {} if baseline is None else {
        f"the same, at {os.environ['BENCH_BASELINE']}": (
            [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(baseline)!r}); "
             "from onionpost.cli import sendmail_main; sendmail_main()", "-oi", "-t"], message)}
    return {
        "python3 -S -c pass": ([sys.executable, "-S", "-c", "pass"], b""),
        "python3 -c pass": ([sys.executable, "-c", "pass"], b""),
        "onionpost-sendmail --help": ([SENDMAIL, "--help"], b""),
        "onionpost-sendmail, tor not running (exit 75)": ([SENDMAIL, "-oi", "-t"], message),
        "pydantic Settings loaded (other commands)": (
            [sys.executable, "-c", "from onionpost.settings import load_settings; "
             "load_settings()"], b""),
        **old,
    }


def timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system: what the machine's load does not stretch)
    and exit code of one run."""
    began = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # a process that exits without reading it
        process.stdin.write(stdin)
        process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - began, usage.ru_utime + usage.ru_stime,
            process.returncode)


def main() -> None:
    revision = os.environ.get("BENCH_BASELINE")
    with tempfile.TemporaryDirectory(prefix="bench-sendmail-") as home:
        baseline = export(revision, Path(home)) if revision else None
        env = {"PATH": os.environ["PATH"], "HOME": home,
               "ONIONPOST_TOR_SOCKS": f"127.0.0.1:{free_port()}",
               "ONIONPOST_SEND_RETRY_DELAYS": "0"}
        table = rows(baseline)
        times: dict[str, list[float]] = {name: [] for name in table}
        cpu: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(RUNS):
            for name, (argv, stdin) in table.items():
                elapsed, used, code = timed(argv, stdin, env)
                expected = 75 if stdin else 0
                if code != expected:
                    raise RuntimeError(f"{name}: exit {code}, expected {expected}")
                times[name].append(elapsed)
                cpu[name].append(used)
    bare, site = (statistics.median(times[name]) for name in list(table)[:2])
    print(f"{RUNS} runs each, interleaved; python {sys.version.split()[0]}; load average "
          f"{os.getloadavg()[0]:.1f}; goal: onionpost-sendmail ≤ {GOAL_SECONDS} s\n")
    site_cpu = statistics.median(cpu[list(table)[1]])
    print("| process | wall p50 | wall min | p50 / `python3 -S -c pass` | p50 / `python3 -c"
          " pass` | CPU p50 | CPU p50 / `python3 -c pass` |\n|---|---|---|---|---|---|---|")
    for name, values in times.items():
        p50 = statistics.median(values)
        used = statistics.median(cpu[name])
        print(f"| {name} | {p50:.3f} s | {min(values):.3f} s | {p50 / bare:.1f} |"
              f" {p50 / site:.1f} | {used:.3f} s | {used / site_cpu:.1f} |")


if __name__ == "__main__":
    main()
