"""What a fetch run does with each listed message; how requests are batched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from onionpost.fetch.plan import batches, make_plan, requests
from onionpost.fetch.protocol import Entry


def entry(n: int, size: int = 100, sub: str = "new") -> Entry:
    return Entry(f"{sub}/{1700000000 + n}.M1R{n}.onionpost" + (":2,S" if sub == "cur" else ""),
                 size)


def test_new_messages_are_fetched_known_ones_confirmed() -> None:
    listed = [entry(1), entry(2), entry(3, sub="cur")]
    plan = make_plan(listed, {listed[1].unique}, keep=False, limit=None)
    assert plan.fetch == [listed[0], listed[2]]
    assert plan.confirm == [listed[1]]


def test_keep_never_touches_known_messages() -> None:
    listed = [entry(1), entry(2)]
    plan = make_plan(listed, {listed[0].unique}, keep=True, limit=None)
    assert plan.fetch == [listed[1]] and plan.confirm == [] and plan.ignored == 1


def test_a_message_here_under_other_flags_is_known() -> None:
    on_server = entry(5, sub="cur")
    plan = make_plan([on_server], {on_server.unique}, keep=False, limit=None)
    assert plan.fetch == [] and plan.confirm == [on_server]


def test_limit_counts_only_fetches() -> None:
    listed = [entry(n) for n in range(10)]
    plan = make_plan(listed, {listed[0].unique}, keep=False, limit=3)
    assert plan.fetch == listed[1:4]
    assert plan.confirm == [listed[0]]
    assert plan.held_back == 6
    assert make_plan(listed, set(), keep=False, limit=0).fetch == []


def test_a_unique_name_listed_twice_is_fetched_once() -> None:
    twice = [entry(1), Entry(entry(1, sub="cur").name, 100)]
    plan = make_plan(twice, set(), keep=False, limit=None)
    assert plan.fetch == [twice[0]]


def test_confirmations_go_first() -> None:
    listed = [entry(1), entry(2)]
    plan = make_plan(listed, {listed[1].unique}, keep=False, limit=None)
    assert requests(plan) == [("SUM", listed[1]), ("GET", listed[0])]


@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=300),
       st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=20000))
def test_batches_keep_order_and_limits(sizes: list[int], count: int, max_bytes: int) -> None:
    items = [("GET", entry(n, size)) for n, size in enumerate(sizes)]
    split = batches(items, count, max_bytes)
    assert [item for batch in split for item in batch] == items
    for batch in split:
        assert 1 <= len(batch) <= count
        weight = sum(e.size for _, e in batch)
        assert weight <= max_bytes or len(batch) == 1
