"""Fixtures for tests/compose: a Docker engine (started if needed) and one stack project."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from onionpost.stack import DockerEngine
from tests.compose.stack import Stack, engine_with_base_images


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    engine = engine_with_base_images(tmp_path_factory.mktemp("docker"))
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="package")
def stack(docker_engine: DockerEngine) -> Iterator[Stack]:
    """The whole stack, up and healthy, shared by test_stack.py and test_stack_owner.py (one
    `up` for both); everything the project created is removed after."""
    stack = Stack()
    try:
        stack.build()
        stack.up()
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
