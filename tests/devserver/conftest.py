"""Real SDK clients pointed at the session's local provider server (reset for each test)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from finops.devserver import DevServer


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
