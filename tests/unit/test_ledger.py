"""The ingest ledger, pure: sessions, per-circuit token buckets, quota reservations, the
circuit table's eviction, and the shared-memory variant across processes."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from onionpost.ingest.ledger import Ledger, Limits, circuit_key
from onionpost.ingest.replies import CIRCUIT_BUSY, CIRCUIT_RATE, MAILBOX_FULL, TOO_MANY_SESSIONS
from onionpost.maildir import Usage
from onionpost.quota import Quota

MINUTE = 60_000


def limits(**changes: int) -> Limits:
    values = {"max_sessions": 100, "circuit_max_sessions": 3, "circuit_messages_per_minute": 10,
              "max_messages": 100, "max_bytes": 1_000_000, **changes}
    quota = Quota(values.pop("max_messages"), values.pop("max_bytes"))
    return Limits(**values, quota=quota)


# --- sessions -------------------------------------------------------------------------


def test_sessions_in_total_are_bounded_and_released() -> None:
    ledger = Ledger.local(limits(max_sessions=3, circuit_max_sessions=10))
    assert [ledger.open_session(key, 0) for key in (1, 2, 3)] == [None] * 3
    assert ledger.open_session(4, 0) == TOO_MANY_SESSIONS
    ledger.close_session(2, 0)
    assert ledger.sessions() == 2
    assert ledger.open_session(4, 0) is None


def test_sessions_per_circuit_are_bounded_independently() -> None:
    ledger = Ledger.local(limits(circuit_max_sessions=2))
    assert [ledger.open_session(7, 0) for _ in range(3)] == [None, None, CIRCUIT_BUSY]
    assert ledger.open_session(8, 0) is None
    ledger.close_session(7, 0)
    assert ledger.open_session(7, 0) is None
    assert ledger.sessions() == 3


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 6)), max_size=200))
def test_session_counts_match_a_model(operations: list[tuple[bool, int]]) -> None:
    ledger = Ledger.local(limits(max_sessions=8, circuit_max_sessions=3))
    open_by_key: dict[int, int] = {}
    for opening, key in operations:
        total = sum(open_by_key.values())
        if opening:
            expected = (TOO_MANY_SESSIONS if total >= 8 else
                        CIRCUIT_BUSY if open_by_key.get(key, 0) >= 3 else None)
            assert ledger.open_session(key, 0) == expected
            if expected is None:
                open_by_key[key] = open_by_key.get(key, 0) + 1
        elif open_by_key.get(key):
            ledger.close_session(key, 0)
            open_by_key[key] -= 1
        assert ledger.sessions() == sum(open_by_key.values())


# --- messages per circuit (token bucket) ------------------------------------------------


def test_a_circuit_gets_its_burst_then_one_message_per_interval() -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=6))
    ledger.open_session(5, 0)
    assert [ledger.take_message(5, 0) for _ in range(7)] == [None] * 6 + [CIRCUIT_RATE]
    assert ledger.take_message(5, MINUTE // 6 - 1) == CIRCUIT_RATE
    assert ledger.take_message(5, MINUTE // 6) is None
    assert ledger.take_message(5, MINUTE // 6) == CIRCUIT_RATE


def test_other_circuits_are_not_throttled() -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=1))
    for key in (11, 12):
        ledger.open_session(key, 0)
    assert ledger.take_message(11, 0) is None
    assert ledger.take_message(11, 0) == CIRCUIT_RATE
    assert ledger.take_message(12, 0) is None


def test_an_idle_circuit_saves_up_no_more_than_one_burst() -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=4))
    ledger.open_session(9, 0)
    later = 100 * MINUTE
    assert [ledger.take_message(9, later) for _ in range(5)] == [None] * 4 + [CIRCUIT_RATE]


@settings(max_examples=300)
@given(rate=st.integers(1, 30),
       gaps=st.lists(st.integers(0, 20_000), min_size=1, max_size=120))
def test_never_more_than_burst_plus_rate_over_any_stretch(rate: int, gaps: list[int]) -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=rate))
    ledger.open_session(3, 0)
    now, accepted = 0, []
    for gap in gaps:
        now += gap
        if ledger.take_message(3, now) is None:
            accepted.append(now)
    for first, start in enumerate(accepted):
        for last in range(first, len(accepted)):
            elapsed = accepted[last] - start
            assert last - first + 1 <= rate + elapsed * rate // MINUTE + 1


@given(rate=st.integers(1, 60), idle=st.integers(0, 10 * MINUTE))
def test_waiting_a_full_interval_always_earns_a_message(rate: int, idle: int) -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=rate))
    ledger.open_session(3, 0)
    while ledger.take_message(3, idle) is None:
        pass
    interval = -(-MINUTE // rate)  # ceil
    assert ledger.take_message(3, idle + interval) is None


# --- quota ----------------------------------------------------------------------------


def test_reserve_commit_release() -> None:
    ledger = Ledger.local(limits(max_messages=2, max_bytes=100))
    assert ledger.reserve(60) is None
    assert ledger.reserve(50) == MAILBOX_FULL  # 110 bytes would cross max_bytes
    assert ledger.reserve(40) is None
    assert ledger.has_room(0) == MAILBOX_FULL  # a third message would cross max_messages
    ledger.release(40)  # that write failed
    assert ledger.usage() == Usage(1, 60)
    ledger.commit(60)
    assert ledger.usage() == Usage(1, 60)
    assert ledger.has_room(40) is None
    assert ledger.has_room(41) == MAILBOX_FULL


def test_commit_runs_the_publish_step_and_counts_it() -> None:
    ledger = Ledger.local(limits())
    published = []
    ledger.reserve(10)
    ledger.commit(10, lambda: published.append("renamed"))
    assert published == ["renamed"]
    assert ledger.usage() == Usage(1, 10)


def test_a_failed_publish_leaves_the_reservation_for_release() -> None:
    ledger = Ledger.local(limits())
    ledger.reserve(10)

    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        ledger.commit(10, fail)
    ledger.release(10)
    assert ledger.usage() == Usage(0, 0)


def test_rescan_replaces_stored_counts_and_keeps_reservations() -> None:
    ledger = Ledger.local(limits(max_messages=3))
    ledger.reserve(5)
    ledger.reserve(5)
    ledger.commit(5)
    assert ledger.rescan(lambda: Usage(0, 0)) == Usage(0, 0)  # the owner fetched it
    assert ledger.usage() == Usage(1, 5)  # the write still in flight
    assert ledger.rescan(lambda: Usage(2, 70)) == Usage(2, 70)
    assert ledger.has_room(0) == MAILBOX_FULL


class QuotaMachine(RuleBasedStateMachine):
    """Random reserve/commit/release/rescan: never over a limit, always what a model says."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger.local(limits(max_messages=5, max_bytes=1000))
        self.reserved: list[int] = []
        self.stored: list[int] = []

    def _usage(self) -> tuple[int, int]:
        sizes = self.reserved + self.stored
        return len(sizes), sum(sizes)

    @rule(size=st.integers(0, 600))
    def reserve(self, size: int) -> None:
        messages, total = self._usage()
        fits = messages + 1 <= 5 and total + size <= 1000
        assert (self.ledger.reserve(size) is None) == fits
        if fits:
            self.reserved.append(size)

    @precondition(lambda self: self.reserved)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        size = self.reserved.pop(data.draw(st.integers(0, len(self.reserved) - 1)))
        self.ledger.commit(size)
        self.stored.append(size)

    @precondition(lambda self: self.reserved)
    @rule()
    def release(self) -> None:
        self.ledger.release(self.reserved.pop())

    @rule(keep=st.integers(0, 5))
    def fetch_and_rescan(self, keep: int) -> None:
        self.stored = self.stored[:keep]
        self.ledger.rescan(lambda: Usage(len(self.stored), sum(self.stored)))

    @invariant()
    def within_limits_and_as_modelled(self) -> None:
        usage = self.ledger.usage()
        assert (usage.messages, usage.bytes) == self._usage()
        assert usage.messages <= 5 and usage.bytes <= 1000


TestQuotaMachine = QuotaMachine.TestCase
TestQuotaMachine.settings = settings(max_examples=200, stateful_step_count=40)


def test_concurrent_reservations_never_cross_the_limit() -> None:
    ledger = Ledger.local(limits(max_messages=50, max_bytes=10**9))
    granted = []

    def worker() -> None:
        for _ in range(200):
            if ledger.reserve(1) is None:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 50
    assert ledger.usage() == Usage(50, 50)


# --- circuit table --------------------------------------------------------------------


def test_a_full_bucket_refuses_new_circuits_until_a_slot_frees() -> None:
    ledger = Ledger.local(limits(circuit_max_sessions=1), buckets=1)  # one bucket, 8 slots
    assert [ledger.open_session(key, 0) for key in range(1, 9)] == [None] * 8
    assert ledger.open_session(9, 0) == CIRCUIT_BUSY
    ledger.close_session(4, 10)
    assert ledger.open_session(9, 20) is None


def test_eviction_takes_the_longest_idle_circuit_and_spares_busy_ones() -> None:
    ledger = Ledger.local(limits(circuit_messages_per_minute=1), buckets=1)
    for key in range(1, 9):  # fill all 8 slots, each spending its one token
        ledger.open_session(key, key)
        assert ledger.take_message(key, key) is None
        if key != 5:
            ledger.close_session(key, key)
    # Key 1 was idle longest: the newcomer takes its slot (and its history goes).
    assert ledger.open_session(100, 50) is None
    assert ledger.take_message(100, 50) is None
    ledger.open_session(1, 51)  # back again: takes the next idle slot (key 2's), full bucket
    assert ledger.take_message(1, 51) is None
    # Key 5 kept its session open the whole time: never evicted, still throttled.
    assert ledger.take_message(5, 52) == CIRCUIT_RATE


@given(st.lists(st.integers(1, 40), min_size=1, max_size=300))
def test_open_sessions_are_never_lost_to_eviction(keys: list[int]) -> None:
    ledger = Ledger.local(limits(circuit_max_sessions=2, max_sessions=10**6), buckets=2)
    held: dict[int, int] = {}
    for now, key in enumerate(keys):
        if ledger.open_session(key, now) is None:
            held[key] = held.get(key, 0) + 1
        if now % 3 == 0 and held:  # close some, so that slots churn
            victim = next(iter(held))
            ledger.close_session(victim, now)
            held[victim] -= 1
            if not held[victim]:
                del held[victim]
    # Each circuit still holding sessions is still at its count: a third is refused only
    # for those at the per-circuit limit.
    for key, count in held.items():
        refusal = ledger.open_session(key, len(keys))
        assert (refusal == CIRCUIT_BUSY) == (count >= 2)
        if refusal is None:
            ledger.close_session(key, len(keys))


# --- circuit keys ---------------------------------------------------------------------


@given(st.text(max_size=60), st.binary(min_size=16, max_size=16))
def test_circuit_key_is_a_stable_positive_63_bit_number(address: str, salt: bytes) -> None:
    key = circuit_key(address, salt)
    assert 0 < key < 2**63
    assert circuit_key(address, salt) == key


def test_circuit_keys_depend_on_the_salt() -> None:
    address = "fc00:dead:beef:4dad::0:18"
    assert circuit_key(address, b"a" * 16) != circuit_key(address, b"b" * 16)
    assert circuit_key(address, b"a" * 16) != circuit_key("fc00:dead:beef:4dad::0:19", b"a" * 16)


# --- shared memory --------------------------------------------------------------------


def _reserve_in_child(ledger: Ledger, count: int) -> None:
    for _ in range(count):
        ledger.reserve(1)


def test_shared_ledger_is_one_quota_across_processes() -> None:
    ledger = Ledger.shared(limits(max_messages=30, max_bytes=10**9))
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_reserve_in_child, args=(ledger, 20)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert ledger.usage() == Usage(30, 30)
    assert ledger.reserve(1) == MAILBOX_FULL
