"""Real SDK clients pointed at a local provider server of this folder's own.

These tests queue per-request state on the server (``next_usage``, injected faults) and read
its request log, so they get a server no other test (nor a straggling retry or worker process
of one) can send to: a stray request would consume the queued state.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from finops.devserver import DevServer


@pytest.fixture(scope="module")
def _own_server() -> Iterator[DevServer]:
    with DevServer() as srv:
        yield srv


@pytest.fixture()
def devserver(_own_server: DevServer) -> Iterator[DevServer]:
    """This module's server with a clean request log and no pending faults."""
    _own_server.reset()
    yield _own_server
    _own_server.reset()


@pytest.fixture()
def oai(devserver: DevServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=devserver.openai_base_url, max_retries=2)


@pytest.fixture()
def aoai(devserver: DevServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test", base_url=devserver.openai_base_url, max_retries=2)


@pytest.fixture()
def claude(devserver: DevServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", base_url=devserver.anthropic_base_url, max_retries=2)


@pytest.fixture()
def aclaude(devserver: DevServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="test", base_url=devserver.anthropic_base_url, max_retries=2
    )
