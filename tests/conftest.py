"""Shared fixtures: the local provider server, a FinOps on a temp ledger, real SDK clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

import finops
from finops.devserver import DevServer


@pytest.fixture(scope="session")
def server() -> Iterator[DevServer]:
    with DevServer() as srv:
        yield srv


@pytest.fixture()
def devserver(server: DevServer) -> Iterator[DevServer]:
    """The session's server with a clean request log and no pending faults."""
    server.reset()
    yield server
    server.reset()


@pytest.fixture()
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.duckdb"


@pytest.fixture()
def fo(ledger_path: Path) -> Iterator[finops.FinOps]:
    f = finops.FinOps(ledger=ledger_path)
    yield f
    f.close()


def _oai(server: DevServer, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-secret", base_url=server.openai_base_url, **kw)  # type: ignore[arg-type]


@pytest.fixture()
def raw_openai(devserver: DevServer) -> openai.OpenAI:
    return _oai(devserver, max_retries=2)


@pytest.fixture()
def raw_async_openai(devserver: DevServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test-secret", base_url=devserver.openai_base_url, max_retries=2
    )


@pytest.fixture()
def raw_anthropic(devserver: DevServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test-secret", base_url=devserver.anthropic_base_url, max_retries=2
    )


@pytest.fixture()
def raw_async_anthropic(devserver: DevServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test-secret", base_url=devserver.anthropic_base_url, max_retries=2
    )
