"""The contract between the services: job names are the functions the workers run, and
payloads survive their JSON trip (as rq stores them) unchanged."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from onionpost import events
from onionpost.events import MessageStored
from onionpost.guardian import jobs as guardian_jobs
from onionpost.notifier import jobs as notifier_jobs
from onionpost.worker import job_names


def test_job_names_are_the_functions_the_workers_run() -> None:
    guardian = job_names(guardian_jobs.messages_stored, guardian_jobs.message_stored,
                         guardian_jobs.sweep, guardian_jobs.new_mail_digest)
    assert {events.MESSAGES_STORED_JOB, events.MESSAGE_STORED_JOB, events.SWEEP_JOB,
            events.NEW_MAIL_DIGEST_JOB} == guardian == guardian_jobs.JOBS
    assert {events.PUBLISH_JOB} == job_names(notifier_jobs.publish) == notifier_jobs.JOBS


@given(st.text(), st.integers(0, 2**53), st.integers(0, 1000),
       st.floats(allow_nan=False, allow_infinity=False), st.text())
def test_a_stored_message_event_survives_json(file: str, size: int, recipients: int,
                                               at: float, circuit: str) -> None:
    event = MessageStored(file, size, recipients, at, circuit)
    assert MessageStored.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_the_event_keeps_its_wire_names() -> None:
    event = MessageStored("1.M2P3Q4.onionpost,S=10", 10, 1, 1.5, "0000abcd")
    assert event.to_dict() == {"file": "1.M2P3Q4.onionpost,S=10", "size": 10,
                               "recipients": 1, "time": 1.5, "circuit": "0000abcd"}


def test_an_event_of_an_older_ingest_reads_with_defaults() -> None:
    older = MessageStored.from_dict({"file": "old-0", "size": 10, "recipients": 1})
    assert older == MessageStored("old-0", 10, 1, 0.0, "")
